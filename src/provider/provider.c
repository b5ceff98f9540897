/* What every provider shares: the names of the verdicts, and the proxy's credentials. */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "base64.h"
#include "config.h"
#include "log.h"
#include "provider.h"
#include "xmalloc.h"

char *
provider_proxy_authorization(const struct config_url *proxy)
{
	char *pair, *encoded, *header;

	if (proxy->host[0] == '\0' || proxy->user[0] == '\0')
		return NULL;
	pair = xasprintf("%s:%s", proxy->user, proxy->password);
	encoded = base64_encode(pair, strlen(pair));
	OPENSSL_cleanse(pair, strlen(pair));
	free(pair);
	header = xasprintf("Basic %s", encoded);
	OPENSSL_cleanse(encoded, strlen(encoded));
	free(encoded);
	return header;
}

char *
provider_proxy_url(const struct config_url *proxy)
{
	char *user, *password, *url;

	if (proxy->host[0] == '\0')
		return NULL;
	if (proxy->user[0] == '\0')
		return xasprintf("http://%s", proxy->authority);
	user = curl_easy_escape(NULL, proxy->user, 0);
	password = curl_easy_escape(NULL, proxy->password, 0);
	if (user == NULL || password == NULL)
		fatalx("out of memory escaping the proxy's credentials");
	url = xasprintf("http://%s:%s@%s", user, password, proxy->authority);
	OPENSSL_cleanse(user, strlen(user));
	OPENSSL_cleanse(password, strlen(password));
	curl_free(user);
	curl_free(password);
	return url;
}

const char *
provider_verdict_name(enum provider_verdict verdict)
{
	switch (verdict) {
	case PROVIDER_SENT: return "sent";
	case PROVIDER_RETRY: return "retry";
	case PROVIDER_TOKEN_GONE: return "token_gone";
	case PROVIDER_REJECTED: return "rejected";
	case PROVIDER_CONFIG: return "config";
	}
	return "unknown";
}
