/*
 * url.c - the outbound URL policy (url.h says what it is and why).
 *
 * Every judgement is made on the parts libcurl's URL API gives back, never
 * on the text: "http://127.attacker.test/" starts like a loopback address
 * and "http://127.1/" does not, but curl connects the first to whatever
 * the name resolves to and the second to 127.0.0.1.
 */
#include "url.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <string.h>
#include <strings.h>

#define LOOPBACK_HINT "a literal loopback address: 127.x.x.x or [::1]"

/* a parsed URL: the parts the policy looks at (curl's copies) */
struct parts {
	CURLU *u;
	char *scheme;             /* lower case */
	char *host;               /* IPv6 in brackets, percent-decoded */
	char *port;               /* NULL when the URL gives none */
	int userinfo;             /* a user, a password or login options */
};

static void parts_free(struct parts *p)
{
	curl_free(p->scheme);
	curl_free(p->host);
	curl_free(p->port);
	curl_url_cleanup(p->u);
}

static int has_part(CURLU *u, CURLUPart what)
{
	char *s = NULL;
	int present = curl_url_get(u, what, &s, 0) == CURLUE_OK;
	curl_free(s);
	return present;
}

/* 0, or -1 with why filled; the text of an unparsable URL is never
 * quoted: where its userinfo ends is exactly what is not known */
static int parse(const char *url, struct parts *p, retl_buf *why)
{
	memset(p, 0, sizeof(*p));
	p->u = curl_url();
	CURLUcode rc = p->u ? curl_url_set(p->u, CURLUPART_URL, url, 0) : CURLUE_OUT_OF_MEMORY;
	if (rc == CURLUE_OK)
		rc = curl_url_get(p->u, CURLUPART_SCHEME, &p->scheme, 0);
	if (rc == CURLUE_OK)
		rc = curl_url_get(p->u, CURLUPART_HOST, &p->host, 0);
	if (rc != CURLUE_OK) {
		retl_buf_addf(why, "not a URL (%s); expected https://host/... (or http:// to "
			      LOOPBACK_HINT ")", curl_url_strerror(rc));
		return -1;
	}
	if (curl_url_get(p->u, CURLUPART_PORT, &p->port, 0) != CURLUE_OK)
		p->port = NULL;
	p->userinfo = has_part(p->u, CURLUPART_USER) || has_part(p->u, CURLUPART_PASSWORD) ||
		      has_part(p->u, CURLUPART_OPTIONS);
	return 0;
}

/* scheme://host[:port]: all a message shows of a URL */
static void add_origin(retl_buf *b, const struct parts *p)
{
	retl_buf_addf(b, "%s://%s", p->scheme, p->host);
	if (p->port)
		retl_buf_addf(b, ":%s", p->port);
}

static int literal_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;
	char v6[INET6_ADDRSTRLEN];
	size_t n = strlen(host);
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (n < 3 || host[0] != '[' || host[n - 1] != ']' || n - 2 >= sizeof(v6))
		return 0;
	memcpy(v6, host + 1, n - 2);
	v6[n - 2] = '\0';
	return inet_pton(AF_INET6, v6, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

static int policy(const struct parts *p, retl_buf *why)
{
	int https = !strcmp(p->scheme, "https");
	if (p->userinfo) {
		add_origin(why, p);
		retl_buf_adds(why, ": a user name or password in the URL is not allowed (not shown here); put credentials in the destination's own keys");
		return -1;
	}
	if (!https && strcmp(p->scheme, "http")) {
		add_origin(why, p);
		retl_buf_adds(why, ": expected https:// (or http:// to " LOOPBACK_HINT ")");
		return -1;
	}
	if (!https && !literal_loopback(p->host)) {
		add_origin(why, p);
		retl_buf_adds(why, ": plain http:// is allowed only to " LOOPBACK_HINT
			      " (not a name such as localhost); use https://");
		return -1;
	}
	return 0;
}

int retl_url_check(const char *url, retl_buf *why)
{
	struct parts p;
	int rc = parse(url, &p, why) < 0 ? -1 : policy(&p, why);
	parts_free(&p);
	return rc;
}

void retl_url_origin(const char *url, retl_buf *out)
{
	struct parts p;
	retl_buf why = RETL_BUF_INIT;
	if (parse(url, &p, &why) == 0)
		add_origin(out, &p);
	else
		retl_buf_adds(out, "(a URL that does not parse)");
	parts_free(&p);
	retl_buf_free(&why);
}

int retl_url_is_loopback(const char *url)
{
	struct parts p;
	retl_buf why = RETL_BUF_INIT;
	int yes = parse(url, &p, &why) == 0 && !p.userinfo &&
		  (!strcmp(p.scheme, "http") || !strcmp(p.scheme, "https")) &&
		  literal_loopback(p.host);
	parts_free(&p);
	retl_buf_free(&why);
	return yes;
}

static int on_list(const char *const *l, const char *host)
{
	for (; l && *l; l++)
		if (retl_url_host_match(*l, host))
			return 1;
	return 0;
}

static void add_list(retl_buf *b, const char *const *l)
{
	for (const char *const *x = l; x && *x; x++)
		retl_buf_addf(b, "%s%s", x == l ? "" : ", ", *x);
}

int retl_url_check_returned(const char *url, const struct retl_url_hosts *h,
			    retl_buf *why)
{
	struct parts p;
	int rc = parse(url, &p, why) < 0 ? -1 : policy(&p, why);
	if (rc == 0 && !on_list(h->patterns, p.host) && !on_list(h->extra, p.host) &&
	    !(h->loopback && literal_loopback(p.host))) {
		add_origin(why, &p);
		if (literal_loopback(p.host))
			retl_buf_adds(why, ": a loopback address, allowed only when the configured URL is one too");
		else {
			retl_buf_addf(why, ": not on %s's domains (", h->vendor);
			add_list(why, h->patterns);
			retl_buf_addc(why, ')');
		}
		if (h->extra_key)
			retl_buf_addf(why, "; a host of yours (a proxy, a test server) can be listed in %s",
				      h->extra_key);
		rc = -1;
	}
	parts_free(&p);
	return rc;
}

static int ascii_host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.';
}

int retl_url_host_match(const char *pattern, const char *host)
{
	size_t hn = strlen(host);
	if (hn && host[hn - 1] == '.')
		hn--;
	/* a name with other bytes (IDN) is turned into another name on the
	 * wire: it matches no pattern rather than a guess at that name */
	for (size_t i = 0; i < hn; i++)
		if (!ascii_host_char(host[i]) && !strchr("[]:", host[i]))
			return 0;
	if (!strncmp(pattern, "*.", 2)) {
		size_t sn = strlen(pattern + 1);      /* ".example.com" */
		return hn > sn && !strncasecmp(host + hn - sn, pattern + 1, sn);
	}
	return strlen(pattern) == hn && !strncasecmp(pattern, host, hn);
}

int retl_url_pattern_check(const char *p, retl_buf *why)
{
	const char *name = strncmp(p, "*.", 2) ? p : p + 2;
	size_t n = strlen(name);
	int ok = n > 0;
	if (ok && name[0] == '[') {
		struct in6_addr a6;
		char v6[INET6_ADDRSTRLEN];
		ok = name == p && n > 2 && name[n - 1] == ']' && n - 2 < sizeof(v6);
		if (ok) {
			memcpy(v6, name + 1, n - 2);
			v6[n - 2] = '\0';
			ok = inet_pton(AF_INET6, v6, &a6) == 1;
		}
	} else if (ok) {
		ok = name[0] != '.' && name[n - 1] != '.' && !strstr(name, "..") &&
		     (name == p || strchr(name, '.'));  /* no "*.com" */
		for (size_t i = 0; ok && i < n; i++)
			ok = ascii_host_char(name[i]);
	}
	if (ok)
		return 0;
	retl_buf_addf(why, "\"%s\" is not a host pattern (expected a host name such as \"api.example.com\", \"*.example.com\" for every name under example.com, or an IP address)",
		      p);
	return -1;
}
