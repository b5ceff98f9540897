/*
 * Provider answers for the APNs and FCM targets, written as text: the status on
 * the first line, header lines "name: value", an empty line, then the body.
 *
 *	410
 *	retry-after: 30
 *
 *	{"reason":"Unregistered","timestamp":1700000000000}
 */
#ifndef PUSHRELAY_FUZZ_ANSWER_H
#define PUSHRELAY_FUZZ_ANSWER_H

#include <ctype.h>

#include "fuzz.h"
#include "h2_client.h"
#include "provider.h"

/* Keep a header as h2_client.c does: in the response's arena, if it fits. */
/*
 * Fill a response from the input; the body points into data. Returns -1 for an
 * input without a status line of 100 to 599 (no such answer reaches a provider).
 */
static int
fuzz_answer_read(const uint8_t *data, size_t size, struct h2_response *r)
{
	const char *p = (const char *)data, *end = p + size, *eol, *colon, *value;
	int status = 0;

	memset(r, 0, sizeof *r);
	if ((eol = memchr(p, '\n', size)) == NULL || eol - p < 3 || eol - p > 3)
		return -1;
	for (; p < eol; p++) {
		if (!isdigit((unsigned char)*p))
			return -1;
		status = status * 10 + (*p - '0');
	}
	if (status < 100 || status > 599)
		return -1;
	r->status = status;
	for (p = eol + 1; p < end; p = eol + 1) {
		if ((eol = memchr(p, '\n', (size_t)(end - p))) == NULL)
			eol = end;
		if (eol == p) {
			p++;
			break;
		}
		/* nghttp2 hands over lowercase names and values without NUL. */
		if ((colon = memchr(p, ':', (size_t)(eol - p))) != NULL &&
		    memchr(p, '\0', (size_t)(eol - p)) == NULL) {
			for (value = colon + 1; value < eol && *value == ' '; value++)
				continue;
			h2_response_add_header(r, (const uint8_t *)p, (size_t)(colon - p),
			    (const uint8_t *)value, (size_t)(eol - value));
		}
		if (eol == end) {
			p = end;
			break;
		}
	}
	r->body = (const uint8_t *)p;
	r->body_len = (size_t)(end - p);
	return 0;
}

/* Abort unless a result is one a delivery can act on and report. */
static void
fuzz_answer_check(const struct provider_result *result, int64_t retry_max_ms)
{
	if ((int)result->verdict < PROVIDER_SENT || result->verdict > PROVIDER_CONFIG)
		fuzz_fail("verdict %d", (int)result->verdict);
	if (result->retry_after_ms < 0 || result->retry_after_ms > retry_max_ms)
		fuzz_fail("retry_after_ms %lld", (long long)result->retry_after_ms);
	if (result->retry_after_ms != 0 && result->verdict != PROVIDER_RETRY)
		fuzz_fail("retry_after_ms %lld for verdict %s", (long long)result->retry_after_ms,
		    provider_verdict_name(result->verdict));
	if (memchr(result->reason, '\0', sizeof result->reason) == NULL)
		fuzz_fail("reason is not terminated");
	/* The reason goes to logs, the feedback webhook's JSON and the store. */
	fuzz_check_utf8("reason", result->reason);
}

#endif
