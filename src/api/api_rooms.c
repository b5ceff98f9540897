/*
 * Membership endpoints: /v1/rooms/{room_id}/members[/{client_id}[/prefs]]. Writes go
 * to the store writer and are answered once committed; reads go to the API's store
 * thread. The loop never waits for the store.
 */
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
#include "store_registry.h"
#include "store_writer.h"
#include "xmalloc.h"

#define API_MEMBERS_LIMIT_DEFAULT 100
#define API_MEMBERS_LIMIT_MAX 1000

/* A membership request on a store thread: what it needs in, what it gives back. */
struct member_job {
	struct api_deferred *deferred;
	char *room;
	char *client;			/* NULL for a list */
	int64_t now;
	enum store_put_result result;
	struct member stored;
	json_t *body;			/* prefs: the request's body (a reference) */
	struct model_error merr;	/* prefs: why the body was refused */
	int refused;			/* prefs: merr is set, nothing was written */
	char *after;			/* list: the page starts after this client */
	size_t limit;			/* list: members in the page */
	struct member_list list;
};

/* Defer the answer of a request on a room's member (or its list, with client NULL). */
static struct member_job *
member_job_new(struct api_request *r, const char *client)
{
	struct member_job *job = xcalloc(1, sizeof *job);

	job->room = xstrdup(r->params[0]);
	job->client = client != NULL ? xstrdup(client) : NULL;
	job->deferred = api_defer(r);
	return job;
}

static void
member_job_free(struct member_job *job)
{
	api_deferred_free(job->deferred);
	model_member_free(&job->stored);
	model_member_list_free(&job->list);
	json_decref(job->body);
	free(job->room);
	free(job->client);
	free(job->after);
	free(job);
}

static int
member_put_run(struct store *store, void *arg)
{
	struct member_job *job = arg;

	return store_member_put(store, job->room, job->client, job->now, &job->result,
	    &job->stored);
}

/* The membership is committed (or not): answer. */
static void
member_put_done(int result, void *arg)
{
	struct member_job *job = arg;
	struct api_request *r = api_deferred_request(job->deferred);

	if (result == STORE_OK && job->result == STORE_PUT_CREATED)
		log_info("member added", "room_id", job->room, "client_id", job->client, NULL);
	if (r != NULL && result != STORE_OK)
		api_reply_store_error(r, result, "membership not stored");
	else if (r != NULL)
		api_reply_json(r, job->result == STORE_PUT_CREATED ? 201 : 200,
		    model_member_to_json(&job->stored));
	member_job_free(job);
}

/* PUT /v1/rooms/{room_id}/members/{client_id}: add a member. */
void
api_member_put(struct api_request *r)
{
	struct model_error merr;
	struct member_job *job;

	if (r->body != NULL && model_member_body_check(r->body, r->params[0], r->params[1], &merr) != 0) {
		api_reply_model_error(r, &merr);
		return;
	}
	job = member_job_new(r, r->params[1]);
	job->now = clock_now_ms();
	store_writer_submit(r->writer, member_put_run, member_put_done, job);
}

static int
member_delete_run(struct store *store, void *arg)
{
	struct member_job *job = arg;

	return store_member_delete(store, job->room, job->client);
}

static void
member_delete_done(int result, void *arg)
{
	struct member_job *job = arg;
	struct api_request *r = api_deferred_request(job->deferred);

	if (result == STORE_OK)
		log_info("member removed", "room_id", job->room, "client_id", job->client,
		    NULL);
	if (r != NULL && result != STORE_OK)
		api_reply_store_error(r, result, "not a member of this room");
	else if (r != NULL)
		api_reply_empty(r, 204);
	member_job_free(job);
}

/* DELETE /v1/rooms/{room_id}/members/{client_id}. */
void
api_member_delete(struct api_request *r)
{
	store_writer_submit(r->writer, member_delete_run, member_delete_done,
	    member_job_new(r, r->params[1]));
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

static int
members_get_run(struct store *store, void *arg)
{
	struct member_job *job = arg;

	/* One extra row says whether another page follows. */
	return store_room_members_list(store, job->room, job->after, job->limit + 1,
	    &job->list);
}

static void
members_get_done(int result, void *arg)
{
	struct member_job *job = arg;
	struct api_request *r = api_deferred_request(job->deferred);
	json_t *members, *next;

	if (r != NULL && result != STORE_OK)
		api_reply_store_error(r, result, "members not listed");
	else if (r != NULL) {
		members = json_array();
		for (size_t i = 0; i < job->list.count && i < job->limit; i++)
			json_array_append_new(members,
			    model_member_to_json(&job->list.items[i]));
		next = job->list.count > job->limit ?
		    json_string(job->list.items[job->limit - 1].client_id) : json_null();
		api_reply_json(r, 200, json_pack("{s:s, s:o, s:o}", "room_id", job->room,
		    "members", members, "next_after", next));
	}
	member_job_free(job);
}

/* GET /v1/rooms/{room_id}/members?limit=N&after=CLIENT_ID: one page of members. */
void
api_members_get(struct api_request *r)
{
	struct evkeyvalq query;
	struct model_error merr;
	struct member_job *job;
	const char *after, *query_string;
	size_t limit;

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
	job = member_job_new(r, NULL);
	job->after = after != NULL ? xstrdup(after) : NULL;
	job->limit = limit;
	store_writer_submit(r->reader, members_get_run, members_get_done, job);
done:
	evhttp_clear_headers(&query);
}

/*
 * Read the membership, apply the body to it and write it back, in one job: what the
 * body leaves out keeps its value, and no other write comes in between.
 */
static int
member_prefs_put_run(struct store *store, void *arg)
{
	struct member_job *job = arg;
	struct member current;
	int64_t muted_until;
	int mentions_only, rc;

	if ((rc = store_member_get(store, job->room, job->client, &current)) != STORE_OK)
		return rc;
	rc = model_prefs_from_json(job->body, &current, &muted_until, &mentions_only,
	    &job->merr);
	model_member_free(&current);
	if (rc != 0) {
		job->refused = 1;
		return STORE_OK;
	}
	return store_member_prefs_put(store, job->room, job->client, muted_until,
	    mentions_only, &job->stored);
}

static void
member_prefs_put_done(int result, void *arg)
{
	struct member_job *job = arg;
	struct api_request *r = api_deferred_request(job->deferred);

	if (r != NULL && result != STORE_OK)
		api_reply_store_error(r, result, "not a member of this room");
	else if (r != NULL && job->refused)
		api_reply_model_error(r, &job->merr);
	else if (r != NULL)
		api_reply_json(r, 200, model_member_to_json(&job->stored));
	member_job_free(job);
}

/* PUT /v1/rooms/{room_id}/members/{client_id}/prefs: mute, mentions only. */
void
api_member_prefs_put(struct api_request *r)
{
	struct member_job *job = member_job_new(r, r->params[1]);

	/* The store thread alone reads the body until the job is done. */
	job->body = json_incref(r->body);
	store_writer_submit(r->writer, member_prefs_put_run, member_prefs_put_done, job);
}
