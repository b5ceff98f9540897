/*
 * An Ably webhook delivery: header lines "name: value", an empty line, then the
 * body (an input without an empty line is all body). The signature check and the
 * translation must not crash or leak, every error, skip detail and event must be
 * text fit for JSON and logs, and the counts must add up.
 */
#include "autoconf.h"

#include <sys/mman.h>

#include <strings.h>
#include <unistd.h>

#include "ably_keys.h"
#include "fuzz.h"
#include "source_ably.h"

/* The keys the signed seeds use (docs/fuzzing.md says how to sign one). */
static const char keys_text[] =
    "# fuzzing keys\n"
    "app1.key1:c2VjcmV0LW9uZQ\n"
    "app1.key2:second#secret\n";

static struct ably_keys *keys;

/* The request's headers, in the order of the header lines' names. */
static const char *const header_names[] = {
	"content-type", "x-ably-envelope-source", "x-ably-envelope-channel",
	"x-ably-message-id", "x-ably-message-client-id", "x-ably-message-connection-id",
	"x-ably-message-timestamp", "x-ably-message-action", "x-ably-key",
	"x-ably-signature",
};
#define HEADERS (sizeof header_names / sizeof header_names[0])

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[64], err[256];
	int fd;

	fuzz_setup();
	if ((fd = memfd_create("ably-keys", 0)) < 0 ||
	    write(fd, keys_text, sizeof keys_text - 1) != (ssize_t)(sizeof keys_text - 1))
		abort();
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	/* A memfd is 0600: no warning about the file's mode. */
	if (ably_keys_load(path, &keys, err, sizeof err) != 0)
		fuzz_fail("keys: %s", err);
	close(fd);
	return 0;
}

/* Split the input into header values (NULL when absent) and the body. */
static void
split(char *text, size_t size, const char *values[HEADERS], const char **body, size_t *len)
{
	char *end = memmem(text, size, "\n\n", 2), *line, *next, *colon;

	memset(values, 0, HEADERS * sizeof *values);
	*body = text;
	*len = size;
	if (end == NULL)
		return;
	*end = '\0';
	*body = end + 2;
	*len = size - (size_t)(end + 2 - text);
	for (line = text; line != NULL; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if ((colon = strchr(line, ':')) == NULL)
			continue;
		*colon++ = '\0';
		while (*colon == ' ')
			colon++;
		for (size_t i = 0; i < HEADERS; i++) {
			if (strcasecmp(line, header_names[i]) == 0)
				values[i] = colon;
		}
	}
}

static void
check_result(const struct ably_result *result)
{
	size_t by_kind = 0;

	if (result->shape != ABLY_SHAPE_BATCHED && result->shape != ABLY_SHAPE_ENVELOPED &&
	    result->shape != ABLY_SHAPE_NON_ENVELOPED)
		fuzz_fail("shape %d", (int)result->shape);
	for (size_t i = 0; i < ABLY_SKIP_KINDS; i++)
		by_kind += result->skipped[i];
	if (by_kind != result->skip_count)
		fuzz_fail("%zu skips by kind, %zu listed", by_kind, result->skip_count);
	for (size_t i = 0; i < result->skip_count; i++) {
		if ((int)result->skips[i].kind < 0 || result->skips[i].kind >= ABLY_SKIP_KINDS)
			fuzz_fail("skip kind %d", (int)result->skips[i].kind);
		fuzz_check_utf8("skip detail", result->skips[i].detail);
	}
	for (size_t i = 0; i < result->count; i++) {
		const struct room_event *ev = &result->events[i];

		if (ev->room == NULL || *ev->room == '\0')
			fuzz_fail("event %zu has no room", i);
		fuzz_check_utf8("room", ev->room);
		fuzz_check_utf8("id", ev->id);
		fuzz_check_utf8("client_id", ev->client_id);
		fuzz_check_utf8("connection_id", ev->connection_id);
		fuzz_check_utf8("text", ev->text);
		if (ev->text != NULL && strlen(ev->text) > EVENT_TEXT_MAX)
			fuzz_fail("text longer than EVENT_TEXT_MAX");
		if (ev->mention_count > EVENT_MENTIONS_MAX)
			fuzz_fail("%zu mentions", ev->mention_count);
		for (size_t m = 0; m < ev->mention_count; m++)
			fuzz_check_utf8("mention", ev->mentions[m]);
		fuzz_check_json("push", ev->push);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_strndup(data, size), err[256];
	const char *values[HEADERS], *body;
	struct ably_request request;
	struct ably_result result;
	size_t len;
	int rc;

	split(text, size, values, &body, &len);
	/* The body as the HTTP layer holds it: exactly len bytes. */
	char *copy = malloc(len > 0 ? len : 1);
	if (copy == NULL)
		abort();
	memcpy(copy, body, len);

	memset(err, '#', sizeof err - 1);
	err[sizeof err - 1] = '\0';
	rc = ably_keys_verify(keys, values[8], values[9], copy, len, err, sizeof err);
	if (rc != ABLY_KEYS_OK)
		fuzz_check_utf8("verify error", err);

	memset(&request, 0, sizeof request);
	request.body = copy;
	request.len = len;
	request.content_type = values[0];
	request.envelope_source = values[1];
	request.envelope_channel = values[2];
	request.message_id = values[3];
	request.message_client_id = values[4];
	request.message_connection_id = values[5];
	request.message_timestamp = values[6];
	request.message_action = values[7];
	memset(err, '#', sizeof err - 1);
	rc = source_ably_translate(&request, &result, err, sizeof err);
	if (rc == ABLY_OK) {
		check_result(&result);
		source_ably_result_free(&result);
	} else {
		if (rc != ABLY_EMSGPACK && rc != ABLY_EJSON && rc != ABLY_ESHAPE)
			fuzz_fail("translate returned %d", rc);
		if (result.count != 0 || result.skip_count != 0 || result.events != NULL)
			fuzz_fail("a refused delivery holds something");
		fuzz_check_utf8("translate error", err);
	}
	free(copy);
	free(text);
	return 0;
}
