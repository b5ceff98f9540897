/* Membership endpoints: /v1/rooms/{room_id}/members[/{client_id}[/prefs]]. */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <sys/queue.h>

#include <event2/keyvalq_struct.h>

#include "api.h"
#include "clock.h"
#include "log.h"
#include "store.h"
#include "xmalloc.h"

#define API_MEMBERS_LIMIT_DEFAULT 100
#define API_MEMBERS_LIMIT_MAX 1000

/* PUT /v1/rooms/{room_id}/members/{client_id}: add a member. */
void
api_member_put(struct api_request *r)
{
	struct model_error merr;
	struct member stored;
	enum store_put_result result;
	int rc;

	if (r->body != NULL && model_member_body_check(r->body, r->params[0], r->params[1], &merr) != 0) {
		api_reply_model_error(r, &merr);
		return;
	}
	rc = store_member_put(r->store, r->params[0], r->params[1], clock_now_ms(), &result,
	    &stored);
	if (rc != 0) {
		api_reply_store_error(r, rc, "membership not stored");
		return;
	}
	if (result == STORE_PUT_CREATED)
		log_info("member added", "room_id", r->params[0], "client_id", r->params[1],
		    NULL);
	api_reply_json(r, result == STORE_PUT_CREATED ? 201 : 200,
	    model_member_to_json(&stored));
	model_member_free(&stored);
}

/* DELETE /v1/rooms/{room_id}/members/{client_id}. */
void
api_member_delete(struct api_request *r)
{
	int rc = store_member_delete(r->store, r->params[0], r->params[1]);

	if (rc != 0) {
		api_reply_store_error(r, rc, "not a member of this room");
		return;
	}
	log_info("member removed", "room_id", r->params[0], "client_id", r->params[1], NULL);
	api_reply_empty(r, 204);
}

/* Parse ?limit= (1..1000); 0 or -1 (answered). */
static int
parse_limit(struct api_request *r, const char *value, size_t *limit)
{
	char *end;
	long v;

	if (value == NULL) {
		*limit = API_MEMBERS_LIMIT_DEFAULT;
		return 0;
	}
	errno = 0;
	v = strtol(value, &end, 10);
	/* Digits only: strtol alone would take " 5" and "+5". */
	if (value[0] < '0' || value[0] > '9' || errno != 0 || *end != '\0' || v < 1 ||
	    v > API_MEMBERS_LIMIT_MAX) {
		api_reply_error(r, 400, "invalid_field", "limit",
		    "limit: must be an integer between 1 and %d", API_MEMBERS_LIMIT_MAX);
		return -1;
	}
	*limit = (size_t)v;
	return 0;
}

/* GET /v1/rooms/{room_id}/members?limit=N&after=CLIENT_ID: one page of members. */
void
api_members_get(struct api_request *r)
{
	struct evkeyvalq query;
	struct member_list list;
	struct model_error merr;
	const char *after, *query_string;
	size_t limit;
	json_t *members, *next;
	int rc;

	TAILQ_INIT(&query);
	query_string = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(r->req));
	if (query_string != NULL && evhttp_parse_query_str(query_string, &query) != 0) {
		api_reply_error(r, 400, "invalid_field", NULL, "malformed query string");
		goto done;
	}
	if (parse_limit(r, evhttp_find_header(&query, "limit"), &limit) != 0)
		goto done;
	after = evhttp_find_header(&query, "after");
	if (after != NULL && model_validate_id(after, "after", &merr) != 0) {
		api_reply_model_error(r, &merr);
		goto done;
	}
	/* One extra row says whether another page follows. */
	rc = store_room_members_list(r->store, r->params[0], after, limit + 1, &list);
	if (rc != 0) {
		api_reply_store_error(r, rc, "members not listed");
		goto done;
	}
	members = json_array();
	for (size_t i = 0; i < list.count && i < limit; i++)
		json_array_append_new(members, model_member_to_json(&list.items[i]));
	next = list.count > limit ? json_string(list.items[limit - 1].client_id) : json_null();
	model_member_list_free(&list);
	api_reply_json(r, 200, json_pack("{s:s, s:o, s:o}", "room_id", r->params[0],
	    "members", members, "next_after", next));
done:
	evhttp_clear_headers(&query);
}

/* PUT /v1/rooms/{room_id}/members/{client_id}/prefs: mute, mentions only. */
void
api_member_prefs_put(struct api_request *r)
{
	struct member current, stored;
	struct model_error merr;
	int64_t muted_until;
	int mentions_only, rc;

	rc = store_member_get(r->store, r->params[0], r->params[1], &current);
	if (rc != 0) {
		api_reply_store_error(r, rc, "not a member of this room");
		return;
	}
	rc = model_prefs_from_json(r->body, &current, &muted_until, &mentions_only, &merr);
	model_member_free(&current);
	if (rc != 0) {
		api_reply_model_error(r, &merr);
		return;
	}
	rc = store_member_prefs_put(r->store, r->params[0], r->params[1], muted_until,
	    mentions_only, &stored);
	if (rc != 0) {
		api_reply_store_error(r, rc, "not a member of this room");
		return;
	}
	api_reply_json(r, 200, model_member_to_json(&stored));
	model_member_free(&stored);
}
