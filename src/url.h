/*
 * url.h - the one policy for every URL retl sends to.
 *
 * A URL from the config (a destination's base_url, the webhook's url,
 * Salesforce's login_url) must be:
 *   - https://, or http:// only to a literal loopback address: an IPv4
 *     literal in 127.0.0.0/8 or the IPv6 literal [::1].  Not the name
 *     "localhost", and no name at all: a name can resolve anywhere (a hosts
 *     file, a DNS answer, "127.0.0.1.nip.io"), and a Bearer token or a
 *     signed batch in plain text must not leave the machine;
 *   - without userinfo ("user:password@"): credentials belong in the
 *     destination's own keys, where they are registered as secrets.
 * A URL an API returns (Salesforce's instance_url) must pass the same
 * rules and be on the vendor's domains, or on the destination's
 * allowed_hosts; a literal loopback host passes too when the configured
 * URL it came from is itself loopback (the tests' emulators).
 *
 * URLs are parsed by libcurl's URL API, the parser the transfer itself
 * uses, so the host judged here is the host connected to ("http://127.1"
 * and "http://0x7f.0.0.1" are 127.0.0.1 to both).  Messages name a URL by
 * its origin only (scheme, host, port): never its userinfo, and never its
 * path or query, which in webhook URLs often hold a token.
 */
#ifndef RETL_URL_H
#define RETL_URL_H

#include "buf.h"

/* which hosts a returned URL may name */
struct retl_url_hosts {
	const char *vendor;               /* "Salesforce", for messages */
	const char *const *patterns;      /* the vendor's, NULL-ended */
	const char *const *extra;         /* the config's allowed_hosts,
					   * NULL-ended; may be NULL */
	int loopback;                     /* literal loopback hosts pass too */
	const char *extra_key;            /* "destinations.sf.allowed_hosts",
					   * named in the message */
};

/*
 * 0 when url is https://, or http:// to a literal loopback address, and
 * carries no userinfo.  Otherwise -1 with one line appended to why that
 * says what is wrong and what is expected (no secret in it).
 */
int retl_url_check(const char *url, retl_buf *why);

/* retl_url_check and, besides, the host on h's lists (a returned URL) */
int retl_url_check_returned(const char *url, const struct retl_url_hosts *h,
			    retl_buf *why);

/* appends scheme://host[:port] of url to out: all a message or a log line
 * shows of a URL (a webhook URL's path or query often holds a token) */
void retl_url_origin(const char *url, retl_buf *out);

/* 1 when url parses as http(s) to a literal loopback address */
int retl_url_is_loopback(const char *url);

/*
 * 1 when host matches pattern, ASCII case ignored and one final dot of
 * host ignored: "*.example.com" matches every name under example.com (at
 * any depth) but not example.com itself; any other pattern matches
 * itself only.
 */
int retl_url_host_match(const char *pattern, const char *host);

/* 0 when p is a host pattern allowed_hosts may hold ("api.example.com",
 * "*.example.com", "127.0.0.1", "[::1]"); else -1 with the reason in why */
int retl_url_pattern_check(const char *p, retl_buf *why);

#endif
