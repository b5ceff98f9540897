/* Retry-After parsing, clamped to RETRY_AFTER_MAX_MS. */
#include "autoconf.h"

#include <ctype.h>
#include <time.h>

#include <curl/curl.h>

#include "retry_after.h"

/*
 * Does s have the shape of pattern? 'a' is a letter, 'A' one or more, '9' a digit,
 * '_' a digit or a space; anything else stands for itself.
 */
static int
shape_matches(const char *s, const char *pattern)
{
	for (; *pattern != '\0'; pattern++) {
		switch (*pattern) {
		case 'A':
			if (!isalpha((unsigned char)*s))
				return 0;
			while (isalpha((unsigned char)s[1]))
				s++;
			break;
		case 'a':
			if (!isalpha((unsigned char)*s))
				return 0;
			break;
		case '9':
			if (!isdigit((unsigned char)*s))
				return 0;
			break;
		case '_':
			if (!isdigit((unsigned char)*s) && *s != ' ')
				return 0;
			break;
		default:
			if (*s != *pattern)
				return 0;
		}
		s++;
	}
	return *s == '\0';
}

/* The three HTTP-date forms: IMF-fixdate, RFC 850 and asctime(). */
static int
http_date_shaped(const char *s)
{
	return shape_matches(s, "aaa, 99 aaa 9999 99:99:99 GMT") ||
	    shape_matches(s, "A, 99-aaa-99 99:99:99 GMT") ||
	    shape_matches(s, "aaa aaa _9 99:99:99 9999");
}

int64_t
retry_after_parse_ms(const char *value, int64_t now_ms)
{
	const int64_t max_seconds = RETRY_AFTER_MAX_MS / 1000;
	const char *p = value;
	int64_t seconds = 0, wait;
	time_t when;

	if (value == NULL)
		return -1;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0')
		return -1;
	if (isdigit((unsigned char)*p)) {
		/* Stop adding digits past the cap: a long number cannot overflow. */
		for (; isdigit((unsigned char)*p); p++) {
			if (seconds <= max_seconds)
				seconds = seconds * 10 + (*p - '0');
		}
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '\0')
			return -1;
		return seconds > max_seconds ? RETRY_AFTER_MAX_MS : seconds * 1000;
	}
	/* curl reads the date, but also much else: check its shape first. */
	if (!http_date_shaped(p) || (when = curl_getdate(p, NULL)) == (time_t)-1)
		return -1;
	if ((int64_t)when >= now_ms / 1000 + max_seconds)
		return RETRY_AFTER_MAX_MS;
	wait = (int64_t)when * 1000 - now_ms;
	return wait > 0 ? wait : 0;
}
