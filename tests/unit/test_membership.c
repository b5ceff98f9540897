/*
 * Tests for membership.c on a real SQLite store and reader thread: joins and leaves
 * are written in order and hold their event until committed; an implicit join is
 * written once per process.
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

#include "log.h"
#include "membership.h"
#include "model.h"
#include "route_store_fixture.h"
#include "tracker.h"

#define T0 INT64_C(1700000000000)

struct fixture {
	struct route_store_fixture store;
	struct membership *membership;
	int acks;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	if (f == NULL || route_store_open(&f->store, "test_membership") != 0)
		return -1;
	f->membership = membership_new(f->store.writer);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	route_store_close(&f->store);
	membership_free(f->membership);
	free(f);
	return 0;
}

static void
on_ack(void *ctx)
{
	struct fixture *f = ctx;

	f->acks++;
}

/* Whether client is a member of room, and since when. */
static int
member_since(struct fixture *f, const char *room, const char *client, int64_t *joined_at)
{
	struct member m;
	int rc;

	route_store_drain(&f->store);
	rc = store_member_get(f->store.store, room, client, &m);
	if (rc == STORE_ENOTFOUND)
		return 0;
	assert_int_equal(rc, STORE_OK);
	*joined_at = m.joined_at;
	model_member_free(&m);
	return 1;
}

static void
test_membership_join_and_leave_hold_their_event_until_committed(void **state)
{
	struct fixture *f = *state;
	struct tracker *t = tracker_new(on_ack, f, NULL, NULL);
	int64_t joined_at;

	membership_write(f->membership, "r1", "bob", 1, T0, t);
	tracker_release(t);
	assert_int_equal(f->acks, 0);
	assert_int_equal(member_since(f, "r1", "bob", &joined_at), 1);
	assert_int_equal(f->acks, 1);
	assert_int_equal(joined_at, T0);
	/* A leave, and a leave of someone who is no member: both succeed. */
	t = tracker_new(on_ack, f, NULL, NULL);
	membership_write(f->membership, "r1", "bob", 0, T0 + 1, t);
	membership_write(f->membership, "r1", "nobody", 0, T0 + 1, t);
	tracker_release(t);
	assert_int_equal(member_since(f, "r1", "bob", &joined_at), 0);
	assert_int_equal(f->acks, 2);
	assert_int_equal(membership_known(f->membership), 0);
}

static void
test_membership_implicit_join_is_written_once_per_process(void **state)
{
	struct fixture *f = *state;
	int64_t joined_at;

	membership_join_implicit(f->membership, "r1", "alice", T0);
	assert_int_equal(member_since(f, "r1", "alice", &joined_at), 1);
	assert_int_equal(membership_known(f->membership), 1);
	/* Removed behind our back (the API): the next message does not write again. */
	assert_int_equal(store_member_delete(f->store.store, "r1", "alice"), STORE_OK);
	membership_join_implicit(f->membership, "r1", "alice", T0 + 5);
	assert_int_equal(store_writer_pending(f->store.writer), 0);
	assert_int_equal(member_since(f, "r1", "alice", &joined_at), 0);
	/* An explicit leave forgets the pair: the next implicit join is written. */
	membership_write(f->membership, "r1", "alice", 0, T0 + 6, NULL);
	membership_join_implicit(f->membership, "r1", "alice", T0 + 7);
	assert_int_equal(member_since(f, "r1", "alice", &joined_at), 1);
	assert_int_equal(joined_at, T0 + 7);
	/* Another room is another pair. */
	membership_join_implicit(f->membership, "r2", "alice", T0 + 8);
	assert_int_equal(member_since(f, "r2", "alice", &joined_at), 1);
	assert_int_equal(membership_known(f->membership), 2);
}

int
main(void)
{
#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		TEST(test_membership_join_and_leave_hold_their_event_until_committed),
		TEST(test_membership_implicit_join_is_written_once_per_process),
	};

	log_set_level(LOG_LEVEL_WARN);	/* not the schema migrations of each fixture */
	return cmocka_run_group_tests_name("membership", tests, NULL, NULL);
}
