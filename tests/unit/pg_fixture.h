/*
 * The store tests' PostgreSQL side: which backend a run of test_store or
 * test_store_writer tests (PUSHRELAY_TEST_STORE: sqlite, the default, or postgresql),
 * the database it uses (PUSHRELAY_TEST_PG, a libpq connection string, set with the
 * server by tests/unit/store_postgresql.py), and SQL run on a connection of the test's
 * own, as another program would. Included by the store's unit tests only.
 */
#ifndef PUSHRELAY_TEST_PG_FIXTURE_H
#define PUSHRELAY_TEST_PG_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

/* The backend under test and, for postgresql, its database. */
static const char *test_backend = "sqlite";
static const char *test_conninfo;

/* Read the environment: 0, or -1 (with a message) when postgresql has no database. */
static inline int
test_backend_init(void)
{
	const char *backend = getenv("PUSHRELAY_TEST_STORE");

	if (backend == NULL || *backend == '\0' || strcmp(backend, "sqlite") == 0)
		return 0;
	test_backend = backend;
	test_conninfo = getenv("PUSHRELAY_TEST_PG");
	if (strcmp(backend, "postgresql") != 0 || test_conninfo == NULL || *test_conninfo == '\0') {
		fprintf(stderr, "PUSHRELAY_TEST_STORE=%s needs PUSHRELAY_TEST_PG (a connection "
		    "string): run tests/unit/store_postgresql.py\n", backend);
		return -1;
	}
	return 0;
}

static inline int
test_is_pg(void)
{
	return strcmp(test_backend, "postgresql") == 0;
}

/* A connection of the test's own, to the test's database or (dbname) another. */
static inline PGconn *
pg_raw_connect(const char *dbname)
{
	const char *const keywords[] = { "dbname", dbname != NULL ? "dbname" : NULL, NULL };
	const char *const values[] = { test_conninfo, dbname, NULL };

	return PQconnectdbParams(keywords, values, 1);
}

/*
 * Run SQL on a connection of the test's own to a database (NULL: the test's); 0, or
 * -1 with the server's message printed.
 */
static inline int
pg_raw_exec_on(const char *dbname, const char *sql)
{
	PGconn *conn = pg_raw_connect(dbname);
	PGresult *res;
	int rc = -1;

	if (PQstatus(conn) != CONNECTION_OK) {
		fprintf(stderr, "pg_raw_exec: %s", PQerrorMessage(conn));
		PQfinish(conn);
		return -1;
	}
	res = PQexec(conn, sql);
	if (PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK)
		rc = 0;
	else
		fprintf(stderr, "pg_raw_exec: %s: %s", sql, PQresultErrorMessage(res));
	PQclear(res);
	PQfinish(conn);
	return rc;
}

/* Run SQL on the test's database, as another program would. */
static inline int
pg_raw_exec(const char *sql)
{
	return pg_raw_exec_on(NULL, sql);
}

/* The first column of the first row of a query, as text ("" for NULL); -1 on error. */
static inline int
pg_raw_text(const char *sql, char *out, size_t outlen)
{
	PGconn *conn = pg_raw_connect(NULL);
	PGresult *res;
	int rc = -1;

	if (PQstatus(conn) != CONNECTION_OK) {
		fprintf(stderr, "pg_raw_text: %s", PQerrorMessage(conn));
		PQfinish(conn);
		return -1;
	}
	res = PQexec(conn, sql);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0) {
		snprintf(out, outlen, "%s", PQgetvalue(res, 0, 0));
		rc = 0;
	} else
		fprintf(stderr, "pg_raw_text: %s: %s", sql, PQresultErrorMessage(res));
	PQclear(res);
	PQfinish(conn);
	return rc;
}

/*
 * An empty database for the next test: the public schema dropped and made again,
 * with SQLite's group_concat(value, separator) so that the tests' own queries read
 * the same on both backends.
 */
static inline int
pg_reset_database(void)
{
	return pg_raw_exec("SET client_min_messages = warning; DROP SCHEMA public CASCADE; CREATE SCHEMA public;"
	    "CREATE FUNCTION group_concat_step(acc text, v anyelement, sep text)"
	    " RETURNS text LANGUAGE sql IMMUTABLE AS"
	    " $$ SELECT CASE WHEN acc IS NULL THEN v::text ELSE acc || sep || v::text END $$;"
	    "CREATE AGGREGATE group_concat(anyelement, text)"
	    " (SFUNC = group_concat_step, STYPE = text);");
}

#endif
