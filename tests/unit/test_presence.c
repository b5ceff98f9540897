/*
 * Tests for presence.c: connections, grace periods and TTLs on a real event loop
 * (short periods), sync, deferred callbacks, and many clients.
 */
#include "autoconf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>

#include "clock.h"
#include "presence.h"

struct fixture {
	struct event_base *base;
	struct presence *presence;
	char log[4096];		/* "away room client;return room client;" */
	size_t aways;
	size_t returns;
	int quiet;		/* count callbacks, do not log them */
	int reenter;		/* callbacks call presence functions */
};

static void
record(struct fixture *f, const char *what, const char *room, const char *client_id)
{
	size_t len = strlen(f->log);

	if (f->quiet)
		return;
	snprintf(f->log + len, sizeof f->log - len, "%s %s %s;", what, room, client_id);
}

static void
on_away(const char *room, const char *client_id, void *arg)
{
	struct fixture *f = arg;

	f->aways++;
	record(f, "away", room, client_id);
	if (f->reenter && strcmp(client_id, "alice") == 0) {
		/* From inside a callback: bob enters, carol leaves (away next round). */
		presence_enter(f->presence, room, "bob", NULL);
		presence_leave(f->presence, room, "carol", NULL);
		assert_int_equal(presence_get(f->presence, room, "carol"), PRESENCE_AWAY);
	}
}

static void
on_return(const char *room, const char *client_id, void *arg)
{
	struct fixture *f = arg;

	f->returns++;
	record(f, "return", room, client_id);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	assert_non_null(f);
	f->base = event_base_new();
	assert_non_null(f->base);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	presence_free(f->presence);
	event_base_free(f->base);
	free(f);
	return 0;
}

/* Start presence with these periods. */
static struct fixture *
start(void **state, int64_t grace_ms, int64_t ttl_ms)
{
	struct fixture *f = *state;
	struct presence_options options = { .grace_ms = grace_ms, .ttl_ms = ttl_ms };

	f->presence = presence_new(f->base, &options, on_away, on_return, f);
	assert_non_null(f->presence);
	return f;
}

/* Run the event loop for ms milliseconds. */
static void
run_for(struct fixture *f, int64_t ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	assert_int_equal(event_base_loopexit(f->base, &tv), 0);
	assert_int_equal(event_base_dispatch(f->base), 0);
}

/* Run what is ready now (deferred callbacks), without waiting. */
static void
run_ready(struct fixture *f)
{
	assert_true(event_base_loop(f->base, EVLOOP_NONBLOCK) >= 0);
}

/* Start presence with these periods and at most max_entries entries. */
static struct fixture *
start_capped(void **state, int64_t grace_ms, int64_t ttl_ms, size_t max_entries)
{
	struct fixture *f = *state;
	struct presence_options options = { .grace_ms = grace_ms, .ttl_ms = ttl_ms,
		.max_entries = max_entries };

	f->presence = presence_new(f->base, &options, on_away, on_return, f);
	assert_non_null(f->presence);
	return f;
}

/* Are at most max entries kept? */
static int
presence_entries_ok(const struct fixture *f, size_t max)
{
	struct presence_stats stats;

	presence_get_stats(f->presence, &stats);
	return stats.entries <= max;
}

/* The entries kept, expired and dropped so far. */
static void
assert_entries(const struct fixture *f, size_t entries, uint64_t expired, uint64_t dropped)
{
	struct presence_stats stats;

	presence_get_stats(f->presence, &stats);
	assert_int_equal(stats.entries, entries);
	assert_int_equal(stats.expired, expired);
	assert_int_equal(stats.dropped, dropped);
}

static void
assert_stats(const struct fixture *f, size_t rooms, size_t present, size_t in_grace)
{
	struct presence_stats stats;

	presence_get_stats(f->presence, &stats);
	assert_int_equal(stats.rooms, rooms);
	assert_int_equal(stats.clients_present, present);
	assert_int_equal(stats.clients_in_grace, in_grace);
}

static void
test_presence_client_on_two_connections_leaves_when_both_left(void **state)
{
	struct fixture *f = start(state, 0, 0);

	presence_enter(f->presence, "r", "alice", "phone");
	presence_enter(f->presence, "r", "alice", "laptop");
	assert_int_equal(presence_get(f->presence, "r", "alice"), PRESENCE_PRESENT);
	assert_stats(f, 1, 1, 0);
	presence_leave(f->presence, "r", "alice", "phone");
	run_ready(f);
	assert_int_equal(presence_get(f->presence, "r", "alice"), PRESENCE_PRESENT);
	assert_string_equal(f->log, "");
	presence_leave(f->presence, "r", "alice", "laptop");
	assert_int_equal(presence_get(f->presence, "r", "alice"), PRESENCE_AWAY);
	assert_stats(f, 0, 0, 0);
	run_ready(f);
	assert_string_equal(f->log, "away r alice;");
}

static void
test_presence_return_within_grace_is_present_and_never_away(void **state)
{
	struct fixture *f = start(state, 50, 0);

	presence_enter(f->presence, "r", "alice", "c1");
	presence_leave(f->presence, "r", "alice", "c1");
	assert_int_equal(presence_get(f->presence, "r", "alice"), PRESENCE_GRACE);
	assert_stats(f, 1, 0, 1);
	run_for(f, 20);
	assert_int_equal(presence_get(f->presence, "r", "alice"), PRESENCE_GRACE);
	presence_enter(f->presence, "r", "alice", "c2");
	assert_int_equal(presence_get(f->presence, "r", "alice"), PRESENCE_PRESENT);
	assert_stats(f, 1, 1, 0);
	/* Not re-entered: the callback waits for the loop. */
	assert_string_equal(f->log, "");
	run_for(f, 120);
	assert_string_equal(f->log, "return r alice;");
	assert_int_equal(presence_get(f->presence, "r", "alice"), PRESENCE_PRESENT);
}

static void
test_presence_grace_ends_with_on_away(void **state)
{
	struct fixture *f = start(state, 50, 0);
	int64_t left;

	presence_enter(f->presence, "r", "alice", NULL);
	presence_enter(f->presence, "r", "bob", NULL);
	presence_leave(f->presence, "r", "alice", NULL);
	left = clock_monotonic_ms();
	run_for(f, 20);
	assert_int_equal(presence_get(f->presence, "r", "alice"), PRESENCE_GRACE);
	assert_string_equal(f->log, "");
	while (f->aways == 0 && clock_monotonic_ms() - left < 2000)
		run_for(f, 10);
	assert_true(clock_monotonic_ms() - left >= 50);
	assert_string_equal(f->log, "away r alice;");
	assert_int_equal(presence_get(f->presence, "r", "alice"), PRESENCE_AWAY);
	assert_int_equal(presence_get(f->presence, "r", "bob"), PRESENCE_PRESENT);
	assert_stats(f, 1, 1, 0);
	presence_leave(f->presence, "r", "bob", NULL);
	run_for(f, 80);
	assert_string_equal(f->log, "away r alice;away r bob;");
	assert_stats(f, 0, 0, 0);
}

static void
test_presence_grace_zero_is_away_at_once_with_callback_from_the_loop(void **state)
{
	struct fixture *f = start(state, 0, 0);

	presence_enter(f->presence, "r", "alice", NULL);
	presence_leave(f->presence, "r", "alice", NULL);
	assert_int_equal(presence_get(f->presence, "r", "alice"), PRESENCE_AWAY);
	assert_stats(f, 0, 0, 0);
	assert_string_equal(f->log, "");
	run_ready(f);
	assert_string_equal(f->log, "away r alice;");
	/* Coming back after being away is no return. */
	presence_enter(f->presence, "r", "alice", NULL);
	run_ready(f);
	assert_string_equal(f->log, "away r alice;");
	assert_int_equal(f->returns, 0);
}

static void
test_presence_ttl_expires_connections_not_refreshed(void **state)
{
	struct fixture *f = start(state, 0, 200);

	presence_enter(f->presence, "r", "alice", "c1");
	presence_enter(f->presence, "r", "bob", "c1");
	run_for(f, 120);
	assert_string_equal(f->log, "");
	presence_update(f->presence, "r", "alice", "c1");
	/* bob expires at 200 ms, alice (refreshed at 120) at 320. */
	run_for(f, 120);
	assert_string_equal(f->log, "away r bob;");
	assert_int_equal(presence_get(f->presence, "r", "bob"), PRESENCE_AWAY);
	assert_int_equal(presence_get(f->presence, "r", "alice"), PRESENCE_PRESENT);
	run_for(f, 160);
	assert_string_equal(f->log, "away r bob;away r alice;");
	assert_stats(f, 0, 0, 0);
}

static void
test_presence_ttl_expiry_is_followed_by_grace(void **state)
{
	struct fixture *f = start(state, 150, 50);

	presence_enter(f->presence, "r", "alice", "c1");
	run_for(f, 100);
	assert_int_equal(presence_get(f->presence, "r", "alice"), PRESENCE_GRACE);
	assert_string_equal(f->log, "");
	assert_stats(f, 1, 0, 1);
	run_for(f, 200);
	assert_int_equal(presence_get(f->presence, "r", "alice"), PRESENCE_AWAY);
	assert_string_equal(f->log, "away r alice;");
}

static void
test_presence_ttl_expiry_makes_the_member_away_and_frees_it(void **state)
{
	struct fixture *f = start(state, 0, 50);

	presence_enter(f->presence, "r", "alice", "c1");
	presence_enter(f->presence, "r", "alice", "c2");
	assert_entries(f, 2, 0, 0);
	run_for(f, 100);
	assert_int_equal(presence_get(f->presence, "r", "alice"), PRESENCE_AWAY);
	assert_string_equal(f->log, "away r alice;");
	assert_stats(f, 0, 0, 0);
	assert_entries(f, 0, 2, 0);
}

static void
test_presence_refreshed_entries_outlive_the_ttl(void **state)
{
	struct fixture *f = start(state, 0, 80);
	const char *const bob[] = { "bob" };

	presence_enter(f->presence, "r", "alice", "c1");
	presence_enter(f->presence, "s", "bob", NULL);
	presence_enter(f->presence, "r", "carol", "c1");
	/* 160 ms in all, never 80 without a refresh for alice (update) and bob (sync). */
	for (int i = 0; i < 4; i++) {
		run_for(f, 40);
		presence_update(f->presence, "r", "alice", "c1");
		presence_sync(f->presence, "s", bob, 1);
	}
	assert_int_equal(presence_get(f->presence, "r", "alice"), PRESENCE_PRESENT);
	assert_int_equal(presence_get(f->presence, "s", "bob"), PRESENCE_PRESENT);
	assert_int_equal(presence_get(f->presence, "r", "carol"), PRESENCE_AWAY);
	assert_string_equal(f->log, "away r carol;");
	assert_entries(f, 2, 1, 0);
}

static void
test_presence_cap_holds_under_a_flood_of_joins_that_never_leave(void **state)
{
	struct fixture *f = start_capped(state, 15000, 0, 100);
	char client[32];

	f->quiet = 1;
	for (size_t i = 0; i < 10000; i++) {
		snprintf(client, sizeof client, "client-%zu", i);
		presence_enter(f->presence, "r", client, "c1");
		assert_true(presence_entries_ok(f, 100));
	}
	assert_entries(f, 100, 0, 9900);
	assert_stats(f, 1, 100, 0);
	/* The newest 100 are present, the rest away (dropped without grace). */
	assert_int_equal(presence_get(f->presence, "r", "client-9900"), PRESENCE_PRESENT);
	assert_int_equal(presence_get(f->presence, "r", "client-9899"), PRESENCE_AWAY);
	assert_int_equal(presence_get(f->presence, "r", "client-0"), PRESENCE_AWAY);
	run_ready(f);
	assert_int_equal(f->aways, 9900);
}

static void
test_presence_cap_drops_the_oldest_of_connections_and_grace(void **state)
{
	struct fixture *f = start_capped(state, 60000, 0, 2);

	presence_enter(f->presence, "r", "bob", "c1");
	run_for(f, 5);
	presence_enter(f->presence, "r", "alice", "c1");
	presence_leave(f->presence, "r", "alice", "c1");
	assert_entries(f, 2, 0, 0);
	run_for(f, 5);
	/* bob's connection (older than alice's grace) goes: away, without grace. */
	presence_enter(f->presence, "r", "carol", "c1");
	assert_int_equal(presence_get(f->presence, "r", "bob"), PRESENCE_AWAY);
	assert_int_equal(presence_get(f->presence, "r", "alice"), PRESENCE_GRACE);
	run_for(f, 5);
	/* Then alice's grace, older than carol's connection: it ends now. */
	presence_enter(f->presence, "r", "dave", "c1");
	assert_int_equal(presence_get(f->presence, "r", "alice"), PRESENCE_AWAY);
	assert_int_equal(presence_get(f->presence, "r", "carol"), PRESENCE_PRESENT);
	assert_int_equal(presence_get(f->presence, "r", "dave"), PRESENCE_PRESENT);
	assert_entries(f, 2, 0, 2);
	run_ready(f);
	assert_string_equal(f->log, "away r bob;away r alice;");
}

static void
test_presence_a_sync_larger_than_the_cap_keeps_its_last_clients(void **state)
{
	struct fixture *f = start_capped(state, 0, 0, 100);
	const char *ids[300];
	char names[300][16];

	f->quiet = 1;
	for (size_t i = 0; i < 300; i++) {
		snprintf(names[i], sizeof names[i], "c%zu", i);
		ids[i] = names[i];
	}
	presence_sync(f->presence, "r", ids, 300);
	assert_entries(f, 100, 0, 200);
	assert_int_equal(presence_get(f->presence, "r", "c199"), PRESENCE_AWAY);
	assert_int_equal(presence_get(f->presence, "r", "c200"), PRESENCE_PRESENT);
	assert_int_equal(presence_get(f->presence, "r", "c299"), PRESENCE_PRESENT);
}

static void
test_presence_lowering_the_cap_drops_the_excess_in_bounded_sweeps(void **state)
{
	struct fixture *f = start_capped(state, 0, 0, 0);
	struct presence_options options = { .max_entries = 100 };
	struct presence_stats stats;
	char client[32];

	f->quiet = 1;
	for (size_t i = 0; i < 2500; i++) {
		snprintf(client, sizeof client, "client-%zu", i);
		presence_enter(f->presence, "r", client, NULL);
	}
	presence_set_options(f->presence, &options);
	/* Not inside the call: from the loop, PRESENCE_SWEEP_MAX a turn. */
	assert_entries(f, 2500, 0, 0);
	assert_true(event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK) >= 0);
	presence_get_stats(f->presence, &stats);
	if (stats.entries < 2500 - PRESENCE_SWEEP_MAX || stats.entries >= 2500)
		fail_msg("%zu entries after one turn", stats.entries);
	run_for(f, 20);
	assert_entries(f, 100, 0, 2400);
	assert_int_equal(presence_get(f->presence, "r", "client-2399"), PRESENCE_AWAY);
	assert_int_equal(presence_get(f->presence, "r", "client-2400"), PRESENCE_PRESENT);
	assert_int_equal(f->aways, 2400);
}

static void
test_presence_sync_replaces_the_rooms_presence(void **state)
{
	struct fixture *f = start(state, 100, 0);
	const char *const present[] = { "bob", "carol", "dave" };

	presence_enter(f->presence, "r", "alice", "c1");
	presence_enter(f->presence, "r", "bob", "c1");
	presence_enter(f->presence, "r", "dave", "c1");
	presence_leave(f->presence, "r", "dave", "c1");
	presence_enter(f->presence, "other", "alice", "c1");
	presence_sync(f->presence, "r", present, 3);
	assert_int_equal(presence_get(f->presence, "r", "alice"), PRESENCE_GRACE);
	assert_int_equal(presence_get(f->presence, "r", "bob"), PRESENCE_PRESENT);
	assert_int_equal(presence_get(f->presence, "r", "carol"), PRESENCE_PRESENT);
	assert_int_equal(presence_get(f->presence, "r", "dave"), PRESENCE_PRESENT);
	assert_int_equal(presence_get(f->presence, "other", "alice"), PRESENCE_PRESENT);
	assert_stats(f, 2, 4, 1);
	run_for(f, 200);
	assert_string_equal(f->log, "return r dave;away r alice;");
	/* An empty sync empties the room. */
	presence_sync(f->presence, "r", NULL, 0);
	assert_int_equal(presence_get(f->presence, "r", "bob"), PRESENCE_GRACE);
	assert_stats(f, 2, 1, 3);
}

static void
test_presence_sync_keeps_known_connections(void **state)
{
	struct fixture *f = start(state, 0, 0);
	const char *const present[] = { "alice", "bob" };

	presence_enter(f->presence, "r", "alice", "c1");
	presence_enter(f->presence, "r", "alice", "c2");
	presence_sync(f->presence, "r", present, 2);
	/* alice keeps c1 and c2, so their leaves still match; bob has the anonymous one. */
	presence_leave(f->presence, "r", "alice", "c1");
	assert_int_equal(presence_get(f->presence, "r", "alice"), PRESENCE_PRESENT);
	presence_leave(f->presence, "r", "alice", "c2");
	assert_int_equal(presence_get(f->presence, "r", "alice"), PRESENCE_AWAY);
	/* A leave naming a connection the sync could not know ends the anonymous one. */
	presence_leave(f->presence, "r", "bob", "c7");
	assert_int_equal(presence_get(f->presence, "r", "bob"), PRESENCE_AWAY);
	run_ready(f);
	assert_string_equal(f->log, "away r alice;away r bob;");
	assert_stats(f, 0, 0, 0);
}

static void
test_presence_connection_id_replaces_the_anonymous_connection(void **state)
{
	struct fixture *f = start(state, 0, 0);

	presence_enter(f->presence, "r", "alice", NULL);
	presence_enter(f->presence, "r", "alice", "c1");
	presence_leave(f->presence, "r", "alice", "c1");
	assert_int_equal(presence_get(f->presence, "r", "alice"), PRESENCE_AWAY);
	/* A leave of a connection it does not have, with no anonymous one, changes nothing. */
	presence_enter(f->presence, "r", "bob", "c1");
	presence_leave(f->presence, "r", "bob", "c2");
	assert_int_equal(presence_get(f->presence, "r", "bob"), PRESENCE_PRESENT);
}

static void
test_presence_leave_without_connection_id_ends_every_connection(void **state)
{
	struct fixture *f = start(state, 0, 0);

	presence_enter(f->presence, "r", "alice", "c1");
	presence_enter(f->presence, "r", "alice", "c2");
	presence_enter(f->presence, "r", "alice", NULL);
	presence_leave(f->presence, "r", "alice", NULL);
	assert_int_equal(presence_get(f->presence, "r", "alice"), PRESENCE_AWAY);
	assert_stats(f, 0, 0, 0);
	run_ready(f);
	assert_string_equal(f->log, "away r alice;");
}

static void
test_presence_of_unknown_rooms_and_clients_is_away(void **state)
{
	struct fixture *f = start(state, 50, 0);

	assert_int_equal(presence_get(f->presence, "nowhere", "alice"), PRESENCE_AWAY);
	presence_enter(f->presence, "r", "alice", NULL);
	assert_int_equal(presence_get(f->presence, "r", "bob"), PRESENCE_AWAY);
	assert_int_equal(presence_get(f->presence, "r2", "alice"), PRESENCE_AWAY);
	/* Leaves of unknown rooms and clients, and a second leave in grace, do nothing. */
	presence_leave(f->presence, "nowhere", "alice", NULL);
	presence_leave(f->presence, "r", "bob", "c1");
	presence_leave(f->presence, "r", "alice", NULL);
	presence_leave(f->presence, "r", "alice", NULL);
	assert_stats(f, 1, 0, 1);
	run_ready(f);
	assert_string_equal(f->log, "");
}

static void
test_presence_callbacks_may_call_presence(void **state)
{
	struct fixture *f = start(state, 0, 0);

	f->reenter = 1;
	presence_enter(f->presence, "r", "alice", NULL);
	presence_enter(f->presence, "r", "carol", NULL);
	presence_leave(f->presence, "r", "alice", NULL);
	assert_int_equal(presence_get(f->presence, "r", "carol"), PRESENCE_PRESENT);
	/* carol's callback is queued from alice's, for the same or the next round. */
	run_ready(f);
	run_ready(f);
	assert_string_equal(f->log, "away r alice;away r carol;");
	assert_int_equal(presence_get(f->presence, "r", "bob"), PRESENCE_PRESENT);
	assert_stats(f, 1, 1, 0);
}

static void
test_presence_shorter_grace_applies_to_clients_in_grace(void **state)
{
	struct fixture *f = start(state, 60000, 0);
	struct presence_options options = { .grace_ms = 20, .ttl_ms = 0 };

	presence_enter(f->presence, "r", "alice", NULL);
	presence_leave(f->presence, "r", "alice", NULL);
	run_for(f, 50);
	assert_int_equal(presence_get(f->presence, "r", "alice"), PRESENCE_GRACE);
	presence_set_options(f->presence, &options);
	run_for(f, 50);
	assert_string_equal(f->log, "away r alice;");
	assert_stats(f, 0, 0, 0);
}

static void
test_presence_free_with_clients_in_grace_and_callbacks_pending(void **state)
{
	struct fixture *f = start(state, 60000, 1000);

	presence_enter(f->presence, "r", "alice", "c1");
	presence_enter(f->presence, "r", "bob", "c1");
	presence_enter(f->presence, "r", "bob", "c2");
	presence_leave(f->presence, "r", "alice", NULL);
	presence_enter(f->presence, "r", "alice", NULL);	/* a return, queued */
	presence_leave(f->presence, "r", "alice", NULL);
	assert_stats(f, 1, 1, 1);
	/* Freed by the teardown with all of that in place; valgrind checks for leaks. */
}

/* Enter clients across rooms on two connections each, then leave; in ms. */
static int64_t
churn(struct fixture *f, size_t clients, size_t rooms)
{
	char room[32], client[32];
	int64_t started = clock_monotonic_ms();

	for (size_t i = 0; i < clients; i++) {
		snprintf(room, sizeof room, "room-%zu", i % rooms);
		snprintf(client, sizeof client, "client-%zu", i);
		presence_enter(f->presence, room, client, "c1");
		presence_enter(f->presence, room, client, "c2");
	}
	assert_stats(f, rooms, clients, 0);
	for (size_t i = 0; i < clients; i++) {
		snprintf(room, sizeof room, "room-%zu", i % rooms);
		snprintf(client, sizeof client, "client-%zu", i);
		if (presence_get(f->presence, room, client) != PRESENCE_PRESENT)
			fail_msg("%s in %s is not present", client, room);
		presence_leave(f->presence, room, client, "c1");
		presence_leave(f->presence, room, client, "c2");
	}
	assert_stats(f, 0, 0, 0);
	return clock_monotonic_ms() - started;
}

static void
test_presence_100k_clients_in_1k_rooms_stay_linear(void **state)
{
	struct fixture *f = start(state, 0, 0);
	int64_t small, large;

	f->quiet = 1;
	small = churn(f, 10000, 100);
	run_ready(f);
	assert_int_equal(f->aways, 10000);
	large = churn(f, 100000, 1000);
	run_ready(f);
	assert_int_equal(f->aways, 110000);
	/*
	 * Ten times the rooms and clients: about ten times the time when every operation
	 * is O(1); a lookup that walks rooms or clients would make it 50 to 100.
	 */
	if (large > 25 * (small + 5))
		fail_msg("10k clients took %lld ms, 100k took %lld ms", (long long)small,
		    (long long)large);
	/* And leave the tables full for presence_free. */
	for (size_t i = 0; i < 100000; i++) {
		char room[32], client[32];

		snprintf(room, sizeof room, "room-%zu", i % 1000);
		snprintf(client, sizeof client, "client-%zu", i);
		presence_enter(f->presence, room, client, NULL);
	}
	assert_stats(f, 1000, 100000, 0);
}

int
main(void)
{
#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		TEST(test_presence_client_on_two_connections_leaves_when_both_left),
		TEST(test_presence_return_within_grace_is_present_and_never_away),
		TEST(test_presence_grace_ends_with_on_away),
		TEST(test_presence_grace_zero_is_away_at_once_with_callback_from_the_loop),
		TEST(test_presence_ttl_expires_connections_not_refreshed),
		TEST(test_presence_ttl_expiry_is_followed_by_grace),
		TEST(test_presence_ttl_expiry_makes_the_member_away_and_frees_it),
		TEST(test_presence_refreshed_entries_outlive_the_ttl),
		TEST(test_presence_cap_holds_under_a_flood_of_joins_that_never_leave),
		TEST(test_presence_cap_drops_the_oldest_of_connections_and_grace),
		TEST(test_presence_a_sync_larger_than_the_cap_keeps_its_last_clients),
		TEST(test_presence_lowering_the_cap_drops_the_excess_in_bounded_sweeps),
		TEST(test_presence_sync_replaces_the_rooms_presence),
		TEST(test_presence_sync_keeps_known_connections),
		TEST(test_presence_connection_id_replaces_the_anonymous_connection),
		TEST(test_presence_leave_without_connection_id_ends_every_connection),
		TEST(test_presence_of_unknown_rooms_and_clients_is_away),
		TEST(test_presence_callbacks_may_call_presence),
		TEST(test_presence_shorter_grace_applies_to_clients_in_grace),
		TEST(test_presence_free_with_clients_in_grace_and_callbacks_pending),
		TEST(test_presence_100k_clients_in_1k_rooms_stay_linear),
	};

	return cmocka_run_group_tests_name("presence", tests, NULL, NULL);
}
