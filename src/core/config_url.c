/*
 * The URLs of the configuration, parsed with libcurl's URL API (curl_url()), which
 * knows bracketed IPv6 addresses, ports, percent-encoding and what a host name may
 * hold better than a hand-written split. config.c parses each URL once, when the file
 * is loaded, and keeps the parts in struct config_url for the providers.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "config.h"

/* A part of the URL, or NULL when it has none; free with curl_free(). */
static char *
url_part(CURLU *handle, CURLUPart part, unsigned int flags)
{
	char *value = NULL;

	if (curl_url_get(handle, part, &value, flags) != CURLUE_OK)
		return NULL;
	return value;
}

/* Is part written in the URL (for the path: more than "/")? */
static int
url_has(CURLU *handle, CURLUPart part)
{
	char *value = url_part(handle, part, 0);
	int has = value != NULL && (part != CURLUPART_PATH || strcmp(value, "/") != 0);

	curl_free(value);
	return has;
}

/* Does text hold a control byte (a decoded CR or LF would end up in a header)? */
static int
has_control(const char *text)
{
	for (; *text != '\0'; text++) {
		if ((unsigned char)*text < 0x20 || *text == 0x7f)
			return 1;
	}
	return 0;
}

/*
 * A proxy URL's user and password, decoded: none, a user alone, or both; 0, or -1
 * for a password without a user, an empty user ("@host"), control bytes, or too long.
 */
static int
url_credentials(struct config_url *url, CURLU *handle)
{
	char *user = url_part(handle, CURLUPART_USER, CURLU_URLDECODE);
	char *password = url_part(handle, CURLUPART_PASSWORD, CURLU_URLDECODE);
	int rv = -1;

	/* libcurl refuses to decode some (control bytes): present, but not decoded. */
	if ((user == NULL && url_has(handle, CURLUPART_USER)) ||
	    (password == NULL && url_has(handle, CURLUPART_PASSWORD)))
		goto out;
	if (user == NULL && password == NULL) {
		rv = 0;
		goto out;
	}
	/* Basic authentication cannot carry a user with a colon (RFC 7617). */
	if (user == NULL || *user == '\0' || has_control(user) || strchr(user, ':') != NULL ||
	    (password != NULL && has_control(password)) ||
	    snprintf(url->user, sizeof url->user, "%s", user) >= (int)sizeof url->user ||
	    (password != NULL && snprintf(url->password, sizeof url->password, "%s",
	    password) >= (int)sizeof url->password))
		goto out;
	rv = 0;
out:
	if (user != NULL)
		OPENSSL_cleanse(user, strlen(user));
	if (password != NULL)
		OPENSSL_cleanse(password, strlen(password));
	curl_free(user);
	curl_free(password);
	return rv;
}

/* Copy what curl_url() found into url; -1 if a part does not fit. */
static int
url_fill(struct config_url *url, CURLU *handle)
{
	char *scheme = url_part(handle, CURLUPART_SCHEME, 0);
	char *host = url_part(handle, CURLUPART_HOST, 0);
	char *port = url_part(handle, CURLUPART_PORT, CURLU_DEFAULT_PORT);
	char *explicit_port = url_part(handle, CURLUPART_PORT, CURLU_NO_DEFAULT_PORT);
	size_t len;
	int rv = -1;

	if (scheme == NULL || host == NULL || port == NULL)
		goto out;
	len = strlen(host);
	if (snprintf(url->scheme, sizeof url->scheme, "%s", scheme) >=
	    (int)sizeof url->scheme || len == 0 || len >= sizeof url->host)
		goto out;
	/* curl keeps the brackets of an IPv6 address: a connect wants none. */
	if (host[0] == '[')
		snprintf(url->host, sizeof url->host, "%.*s", (int)(len - 2), host + 1);
	else
		snprintf(url->host, sizeof url->host, "%s", host);
	url->port = (unsigned int)strtoul(port, NULL, 10);
	if (url->port == 0 || url->port > 65535)
		goto out;
	if (explicit_port != NULL)
		snprintf(url->authority, sizeof url->authority, "%s:%s", host, explicit_port);
	else
		snprintf(url->authority, sizeof url->authority, "%s", host);
	rv = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(explicit_port);
	return rv;
}

int
config_url_parse(struct config_url *url, const char *text, enum config_url_kind kind)
{
	CURLU *handle;
	unsigned int flags = CURLU_NON_SUPPORT_SCHEME;
	int rv = -1;

	memset(url, 0, sizeof *url);
	if (text == NULL)
		return -1;
	if (kind == CONFIG_URL_PROXY) {
		/* http:// or no scheme (curl_url() is given its default). */
		if (strstr(text, "://") != NULL && strncmp(text, "http://", 7) != 0)
			return -1;
		flags |= CURLU_DEFAULT_SCHEME;
	}
	if ((handle = curl_url()) == NULL)
		return -1;
	if (curl_url_set(handle, CURLUPART_URL, text, flags) != CURLUE_OK)
		goto out;
	if (url_has(handle, CURLUPART_ZONEID))
		goto out;
	switch (kind) {
	case CONFIG_URL_ORIGIN:
		if (url_has(handle, CURLUPART_USER) || url_has(handle, CURLUPART_PASSWORD) ||
		    url_has(handle, CURLUPART_PATH) || url_has(handle, CURLUPART_QUERY) ||
		    url_has(handle, CURLUPART_FRAGMENT))
			goto out;
		break;
	case CONFIG_URL_PROXY:
		if (url_has(handle, CURLUPART_PATH) || url_has(handle, CURLUPART_QUERY) ||
		    url_has(handle, CURLUPART_FRAGMENT) || url_credentials(url, handle) != 0)
			goto out;
		break;
	case CONFIG_URL_HTTPS:
	case CONFIG_URL_HTTP:
		break;
	}
	if (kind == CONFIG_URL_PROXY && !url_has(handle, CURLUPART_PORT))
		goto out;
	if (url_fill(url, handle) != 0)
		goto out;
	if (kind == CONFIG_URL_PROXY)
		url->scheme[0] = '\0';
	else if (strcmp(url->scheme, "https") != 0 &&
	    (kind != CONFIG_URL_HTTP || strcmp(url->scheme, "http") != 0))
		goto out;
	rv = 0;
out:
	curl_url_cleanup(handle);
	if (rv != 0)
		memset(url, 0, sizeof *url);
	return rv;
}

const char *
config_url_expected(enum config_url_kind kind)
{
	switch (kind) {
	case CONFIG_URL_ORIGIN:
		return "https://host or https://host:port, without a path";
	case CONFIG_URL_HTTPS:
		return "an https:// URL";
	case CONFIG_URL_HTTP:
		return "an http:// or https:// URL";
	case CONFIG_URL_PROXY:
		return "host:port, or http://user:password@host:port";
	}
	return "a URL";
}
