/* pushrelayctl members: a room's members and their preferences. */
#include "autoconf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "xmalloc.h"

#include "ctl.h"

/* A room's members, page after page, at most --limit of them. */
int
ctl_members_list(struct ctl *ctl, char **args)
{
	struct ctl_response response;
	struct ctl_table table;
	json_t *members = json_array(), *member, *out, *next = json_null();
	char *room = ctl_escape(ctl, args[0]), *after = NULL, *path, *text;
	uint64_t page;
	size_t i;
	int rc = CTL_EXIT_OK;

	for (;;) {
		page = ctl->page_size;
		if (ctl->limit != 0 && ctl->limit - json_array_size(members) < page)
			page = ctl->limit - json_array_size(members);
		path = xasprintf("/v1/rooms/%s/members?limit=%" PRIu64 "%s%s", room, page,
		    after != NULL ? "&after=" : "", after != NULL ? after : "");
		rc = ctl_call(ctl, "GET", path, NULL, &response);
		free(path);
		free(after);
		after = NULL;
		if (rc != 0)
			goto done;
		json_array_extend(members, json_object_get(response.json, "members"));
		json_decref(next);
		next = json_incref(json_object_get(response.json, "next_after"));
		if (next == NULL)
			next = json_null();
		ctl_response_free(&response);
		if (!json_is_string(next) || (ctl->limit != 0 &&
		    json_array_size(members) >= ctl->limit))
			break;
		after = ctl_escape(ctl, json_string_value(next));
	}

	if (ctl->json) {
		out = json_pack("{s:s, s:O, s:O}", "room_id", args[0], "members", members,
		    "next_after", next);
		ctl_print_json(out);
		json_decref(out);
	} else if (json_array_size(members) == 0) {
		text = ctl_sanitize(args[0]);
		printf("room %s has no members\n", text);
		free(text);
	} else {
		ctl_table_init(&table, 4);
		ctl_table_add(&table, "CLIENT_ID", "JOINED_AT", "MUTED_UNTIL", "MENTIONS_ONLY");
		json_array_foreach(members, i, member) {
			ctl_table_add_owned(&table, (char *[]){ ctl_field(member, "client_id"),
			    ctl_field(member, "joined_at"), ctl_field(member, "muted_until"),
			    ctl_field(member, "mentions_only") });
		}
		ctl_table_print(&table);
	}
done:
	json_decref(members);
	json_decref(next);
	free(room);
	return rc;
}

/* Add a member. */
int
ctl_members_add(struct ctl *ctl, char **args)
{
	struct ctl_response response;
	char *path = ctl_path(ctl, "/v1/rooms/", args[0], "/members/",
	    args[1], NULL);
	char *room, *client;
	int rc;

	rc = ctl_call(ctl, "PUT", path, NULL, &response);
	free(path);
	if (rc != 0)
		return rc;
	if (ctl->json)
		ctl_print_json(response.json);
	else {
		room = ctl_sanitize(args[0]);
		client = ctl_sanitize(args[1]);
		if (response.status == 201)
			printf("added %s to room %s\n", client, room);
		else
			printf("%s is already a member of room %s\n", client, room);
		free(room);
		free(client);
	}
	ctl_response_free(&response);
	return CTL_EXIT_OK;
}

/* Remove a member. */
int
ctl_members_remove(struct ctl *ctl, char **args)
{
	struct ctl_response response;
	char *path = ctl_path(ctl, "/v1/rooms/", args[0], "/members/",
	    args[1], NULL);
	char *room, *client;
	json_t *out;
	int rc;

	rc = ctl_call(ctl, "DELETE", path, NULL, &response);
	free(path);
	if (rc != 0)
		return rc;
	if (ctl->json) {
		out = json_pack("{s:s, s:s, s:b}", "room_id", args[0], "client_id", args[1],
		    "removed", 1);
		ctl_print_json(out);
		json_decref(out);
	} else {
		room = ctl_sanitize(args[0]);
		client = ctl_sanitize(args[1]);
		printf("removed %s from room %s\n", client, room);
		free(room);
		free(client);
	}
	ctl_response_free(&response);
	return CTL_EXIT_OK;
}

/* Set a member's preferences; the membership comes back in response. */
static int
ctl_members_prefs(struct ctl *ctl, char **args, json_t *prefs, struct ctl_response *response)
{
	char *path = ctl_path(ctl, "/v1/rooms/", args[0], "/members/",
	    args[1], "/prefs", NULL);
	int rc;

	rc = ctl_call(ctl, "PUT", path, prefs, response);
	free(path);
	json_decref(prefs);
	if (rc == 0 && ctl->json)
		ctl_print_json(response->json);
	return rc;
}

/* Mute a member until a time, or unmute. */
int
ctl_members_mute(struct ctl *ctl, char **args)
{
	struct ctl_response response;
	char *room, *client, *until;
	int rc;

	if ((ctl->seen & (CTL_OPT_UNTIL | CTL_OPT_OFF)) == 0 ||
	    (ctl->seen & (CTL_OPT_UNTIL | CTL_OPT_OFF)) == (CTL_OPT_UNTIL | CTL_OPT_OFF))
		ctl_usage_error(ctl->command, "give one of --until TIME and --off");
	rc = ctl_members_prefs(ctl, args, json_pack("{s:s?}", "muted_until", ctl->until),
	    &response);
	if (rc != 0)
		return rc;
	if (!ctl->json) {
		room = ctl_sanitize(args[0]);
		client = ctl_sanitize(args[1]);
		until = ctl_field(response.json, "muted_until");
		if (ctl->until != NULL)
			printf("muted %s in room %s until %s\n", client, room, until);
		else
			printf("unmuted %s in room %s\n", client, room);
		free(room);
		free(client);
		free(until);
	}
	ctl_response_free(&response);
	return CTL_EXIT_OK;
}

/* Notify a member only when mentioned, or of every message. */
int
ctl_members_mentions_only(struct ctl *ctl, char **args)
{
	struct ctl_response response;
	char *room, *client;
	int on, rc;

	if (strcmp(args[2], "on") == 0)
		on = 1;
	else if (strcmp(args[2], "off") == 0)
		on = 0;
	else
		ctl_usage_error(ctl->command, "mentions-only: say on or off, not '%s'", args[2]);
	rc = ctl_members_prefs(ctl, args, json_pack("{s:b}", "mentions_only", on), &response);
	if (rc != 0)
		return rc;
	if (!ctl->json) {
		room = ctl_sanitize(args[0]);
		client = ctl_sanitize(args[1]);
		printf("%s in room %s: notified %s\n", client, room,
		    on ? "only when mentioned" : "of every message");
		free(room);
		free(client);
	}
	ctl_response_free(&response);
	return CTL_EXIT_OK;
}
