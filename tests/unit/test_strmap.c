/* Tests for strmap.c: the string-keyed hash map the router and presence keep state in. */
#include "autoconf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "strmap.h"

static void
test_put_get_replace_and_remove(void **state)
{
	struct strmap *map = strmap_new();
	int a, b;

	assert_null(strmap_get(map, "room", 4));
	assert_null(strmap_put(map, "room", 4, &a));
	assert_ptr_equal(strmap_get(map, "room", 4), &a);
	assert_null(strmap_get(map, "roo", 3));
	assert_null(strmap_get(map, "rooms", 5));
	/* Replacing returns the previous value and keeps one entry. */
	assert_ptr_equal(strmap_put(map, "room", 4, &b), &a);
	assert_ptr_equal(strmap_get(map, "room", 4), &b);
	assert_int_equal(strmap_count(map), 1);
	assert_ptr_equal(strmap_remove(map, "room", 4), &b);
	assert_null(strmap_remove(map, "room", 4));
	assert_null(strmap_get(map, "room", 4));
	assert_int_equal(strmap_count(map), 0);
	strmap_free(map);
}

/* The router's keys are two ids joined by a NUL: the whole length counts. */
static void
test_keys_with_nul_bytes_differ_by_their_whole_length(void **state)
{
	struct strmap *map = strmap_new();
	int ab, a_b;

	strmap_put(map, "dm-1\0r-1", 8, &ab);
	strmap_put(map, "dm-1\0r-", 7, &a_b);
	assert_ptr_equal(strmap_get(map, "dm-1\0r-1", 8), &ab);
	assert_ptr_equal(strmap_get(map, "dm-1\0r-", 7), &a_b);
	assert_null(strmap_get(map, "dm-1", 4));
	assert_int_equal(strmap_count(map), 2);
	strmap_free(map);
}

static void
count_and_remove_odd(const char *key, size_t keylen, void *value, void *arg)
{
	struct strmap *map = arg;
	int n = (int)(intptr_t)value;

	if (n % 2 == 1)
		assert_ptr_equal(strmap_remove(map, key, keylen), value);
}

/* Many keys that differ in a digit: all found after growing; foreach may remove. */
static void
test_many_similar_keys_survive_growth_and_removal_in_foreach(void **state)
{
	enum { N = 100000 };
	struct strmap *map = strmap_new();
	char key[32];
	int len;

	for (int i = 1; i <= N; i++) {
		len = snprintf(key, sizeof key, "dm-%d", i);
		assert_null(strmap_put(map, key, (size_t)len, (void *)(intptr_t)i));
	}
	assert_int_equal(strmap_count(map), N);
	for (int i = 1; i <= N; i++) {
		len = snprintf(key, sizeof key, "dm-%d", i);
		assert_ptr_equal(strmap_get(map, key, (size_t)len), (void *)(intptr_t)i);
	}
	strmap_foreach(map, count_and_remove_odd, map);
	assert_int_equal(strmap_count(map), N / 2);
	for (int i = 1; i <= N; i++) {
		len = snprintf(key, sizeof key, "dm-%d", i);
		if (i % 2 == 1)
			assert_null(strmap_get(map, key, (size_t)len));
		else
			assert_ptr_equal(strmap_get(map, key, (size_t)len), (void *)(intptr_t)i);
	}
	strmap_free(map);
}

/* Keys that come and go (a message being routed) leave removed slots behind. */
static void
test_churn_of_short_lived_keys_leaves_lookups_working(void **state)
{
	struct strmap *map = strmap_new();
	char key[32];
	int len, stay;

	strmap_put(map, "stays", 5, &stay);
	for (int i = 0; i < 1000000; i++) {
		len = snprintf(key, sizeof key, "dm-%d\001m-%d", i % 977, i);
		assert_null(strmap_put(map, key, (size_t)len, map));
		if (i % 3 == 0)
			assert_null(strmap_get(map, "absent", 6));
		assert_ptr_equal(strmap_remove(map, key, (size_t)len), map);
	}
	assert_int_equal(strmap_count(map), 1);
	assert_ptr_equal(strmap_get(map, "stays", 5), &stay);
	strmap_free(map);
}

/* Record the order foreach gives the keys "k0".."k63" in, as their numbers. */
static void
record_order(const char *key, size_t keylen, void *value, void *arg)
{
	int *order = arg;

	(void)key;
	(void)keylen;
	order[order[64]++] = (int)(intptr_t)value;
}

/*
 * Each map hashes under its own random key: the same keys sit in other slots, so
 * copying one map into another in slot order cannot build long probe runs, and
 * nobody who learns one map's layout knows another's.
 */
static void
test_each_map_has_its_own_hash_key(void **state)
{
	struct strmap *a = strmap_new(), *b = strmap_new();
	int order_a[65] = { 0 }, order_b[65] = { 0 };
	char key[8];
	int len;

	(void)state;
	for (int i = 0; i < 64; i++) {
		len = snprintf(key, sizeof key, "k%d", i);
		strmap_put(a, key, (size_t)len, (void *)(intptr_t)i);
		strmap_put(b, key, (size_t)len, (void *)(intptr_t)i);
	}
	strmap_foreach(a, record_order, order_a);
	strmap_foreach(b, record_order, order_b);
	assert_int_equal(order_a[64], 64);
	assert_int_equal(order_b[64], 64);
	assert_memory_not_equal(order_a, order_b, 64 * sizeof order_a[0]);
	strmap_free(a);
	strmap_free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_get_replace_and_remove),
		cmocka_unit_test(test_keys_with_nul_bytes_differ_by_their_whole_length),
		cmocka_unit_test(test_many_similar_keys_survive_growth_and_removal_in_foreach),
		cmocka_unit_test(test_churn_of_short_lived_keys_leaves_lookups_working),
		cmocka_unit_test(test_each_map_has_its_own_hash_key),
	};

	return cmocka_run_group_tests_name("strmap", tests, NULL, NULL);
}
