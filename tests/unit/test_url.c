/*
 * test_url.c - the outbound URL policy (url.h): https or http to a literal
 * loopback address only, no userinfo, a returned URL on the vendor's
 * domains; every message free of the userinfo, path and query.
 *
 * The look-alikes are the ones issue 13 found passing: a prefix test let
 * "http://127.attacker.test/" and "http://127.0.0.1.nip.io/" through, and
 * "user:password@" was accepted and echoed.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "test.h"
#include "url.h"

/* the reason url is refused, "" when it is not (static buffer) */
static const char *why_refused(const char *url)
{
	static char out[1024];
	retl_buf why = RETL_BUF_INIT;
	int rc = retl_url_check(url, &why);
	snprintf(out, sizeof(out), "%s", rc == 0 ? "" : why.len ? why.ptr : "(no reason)");
	if (rc == 0 && why.len)
		snprintf(out, sizeof(out), "passed, yet a reason: %s", why.ptr);
	retl_buf_free(&why);
	return out;
}

static void test_allowed(void)
{
	static const char *const ok[] = {
		"https://api.hubapi.com", "https://api.hubapi.com/crm/v3?x=1#f",
		"HTTPS://Example.COM:8443/x", "http://127.0.0.1", "http://127.0.0.1:8080/hook",
		"http://127.255.255.254/", "http://[::1]:8000/", "HTTP://127.0.0.1/",
		"http://[0:0:0:0:0:0:0:1]/", "https://[::1]/",
		/* curl connects these to 127.0.0.1 too: its parser decides */
		"http://127.1/", "http://0x7f.0.0.1/", "http://2130706433/",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		const char *w = why_refused(ok[i]);
		CHECK(!*w);
		if (*w)
			fprintf(stderr, "  %s: %s\n", ok[i], w);
	}
}

static void test_refused(void)
{
	static const struct { const char *url, *why; } bad[] = {
		/* the findings of issue 13 */
		{ "http://127.attacker.test/",
		  "http://127.attacker.test: plain http:// is allowed only to a literal loopback address: 127.x.x.x or [::1] (not a name such as localhost); use https://" },
		{ "http://127.0.0.1.nip.io/",
		  "http://127.0.0.1.nip.io: plain http:// is allowed only to a literal loopback address: 127.x.x.x or [::1] (not a name such as localhost); use https://" },
		{ "http://192.0.2.2",
		  "http://192.0.2.2: plain http:// is allowed only to a literal loopback address: 127.x.x.x or [::1] (not a name such as localhost); use https://" },
		{ "https://user:hunter2@api.example.com/v1",
		  "https://api.example.com: a user name or password in the URL is not allowed (not shown here); put credentials in the destination's own keys" },
		/* names, even the loopback one: a name can be remapped */
		{ "http://localhost:8080/",
		  "http://localhost:8080: plain http:// is allowed only to a literal loopback address: 127.x.x.x or [::1] (not a name such as localhost); use https://" },
		{ "http://127.0.0.1./",
		  "http://127.0.0.1.: plain http:// is allowed only to a literal loopback address: 127.x.x.x or [::1] (not a name such as localhost); use https://" },
		{ "http://[::2]/",
		  "http://[::2]: plain http:// is allowed only to a literal loopback address: 127.x.x.x or [::1] (not a name such as localhost); use https://" },
		{ "http://[::ffff:127.0.0.1]/",
		  "http://[::ffff:127.0.0.1]: plain http:// is allowed only to a literal loopback address: 127.x.x.x or [::1] (not a name such as localhost); use https://" },
		{ "http://128.0.0.1/",
		  "http://128.0.0.1: plain http:// is allowed only to a literal loopback address: 127.x.x.x or [::1] (not a name such as localhost); use https://" },
		/* userinfo in every shape, loopback or not */
		{ "http://user@127.0.0.1:80",
		  "http://127.0.0.1:80: a user name or password in the URL is not allowed (not shown here); put credentials in the destination's own keys" },
		{ "https://:s3cret@api.example.com",
		  "https://api.example.com: a user name or password in the URL is not allowed (not shown here); put credentials in the destination's own keys" },
		{ "http://evil.com@127.0.0.1/",
		  "http://127.0.0.1: a user name or password in the URL is not allowed (not shown here); put credentials in the destination's own keys" },
		/* other schemes, no URL at all */
		{ "ftp://127.0.0.1/",
		  "ftp://127.0.0.1: expected https:// (or http:// to a literal loopback address: 127.x.x.x or [::1])" },
		{ "https://",
		  "not a URL (No host part in the URL); expected https://host/... (or http:// to a literal loopback address: 127.x.x.x or [::1])" },
		{ "localhost:8080", NULL },
		{ "api.example.com/x", NULL },
		{ "", NULL },
		{ "http://127.0.0.1 /", NULL },
		{ "http://127.0.0.1:99999/", NULL },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *w = why_refused(bad[i].url);
		CHECK(*w);
		if (bad[i].why)
			CHECK_STR(w, bad[i].why);
		else if (*w)
			CHECK(!strncmp(w, "not a URL (", 11));
	}
}

/* an unparsable URL is never quoted: where its password ends is unknown */
static void test_no_secret_in_messages(void)
{
	static const char *const urls[] = {
		"https://user:pa/ss@host/", "http://a:hunter2@b@c/", "https://u:hunter2@h/p?token=t0k",
		"http://u:hunter2@127.0.0.1/", "ftp://u:hunter2@h/", "https://h/hook/SECRETPATH?token=t0k",
		"http://h/hook/SECRETPATH?token=t0k",
	};
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		const char *w = why_refused(urls[i]);
		if (i < 5)
			CHECK(*w);
		CHECK(!strstr(w, "hunter2") && !strstr(w, "pa/ss") && !strstr(w, "ss@") &&
		      !strstr(w, "SECRETPATH") && !strstr(w, "t0k"));
	}
}

static void test_is_loopback(void)
{
	CHECK(retl_url_is_loopback("http://127.0.0.1:9/"));
	CHECK(retl_url_is_loopback("http://127.9.9.9"));
	CHECK(retl_url_is_loopback("https://[::1]:8443"));
	CHECK(!retl_url_is_loopback("http://localhost/"));
	CHECK(!retl_url_is_loopback("http://127.0.0.1.nip.io/"));
	CHECK(!retl_url_is_loopback("https://login.salesforce.com"));
	CHECK(!retl_url_is_loopback("http://u:p@127.0.0.1/"));
	CHECK(!retl_url_is_loopback("ftp://127.0.0.1/"));
	CHECK(!retl_url_is_loopback("not a url"));
}

static void test_host_match(void)
{
	CHECK(retl_url_host_match("*.salesforce.com", "acme.my.salesforce.com"));
	CHECK(retl_url_host_match("*.salesforce.com", "na123.salesforce.com"));
	CHECK(retl_url_host_match("*.salesforce.com", "ACME.My.SalesForce.COM"));
	CHECK(retl_url_host_match("*.salesforce.com", "acme.my.salesforce.com."));
	CHECK(!retl_url_host_match("*.salesforce.com", "salesforce.com"));
	CHECK(!retl_url_host_match("*.salesforce.com", "evilsalesforce.com"));
	CHECK(!retl_url_host_match("*.salesforce.com", "acme.salesforce.com.evil.test"));
	CHECK(!retl_url_host_match("*.salesforce.com", ".salesforce.com"));
	CHECK(!retl_url_host_match("*.salesforce.com", "\xc3\xa9.salesforce.com"));
	CHECK(retl_url_host_match("sf-proxy.example.com", "SF-PROXY.example.com"));
	CHECK(!retl_url_host_match("sf-proxy.example.com", "a.sf-proxy.example.com"));
	CHECK(!retl_url_host_match("sf-proxy.example.com", "sf-proxy.example.co"));
	CHECK(retl_url_host_match("[::1]", "[::1]"));
	CHECK(retl_url_host_match("127.0.0.2", "127.0.0.2"));
}

static void test_patterns(void)
{
	static const char *const ok[] = {
		"sf-proxy.example.com", "*.example.com", "127.0.0.2", "[::1]", "localhost",
	};
	static const char *const bad[] = {
		"", "*", "*.", "*.com", ".example.com", "example.com.", "a..b", "https://x.com",
		"x.com/p", "user@x.com", "x.com:443", "*.[::1]", "[::1", "[nothex]", "a b", "\xc3\xa9.com",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		retl_buf why = RETL_BUF_INIT;
		CHECK(retl_url_pattern_check(ok[i], &why) == 0);
		CHECK(why.len == 0);
		retl_buf_free(&why);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		retl_buf why = RETL_BUF_INIT;
		CHECK(retl_url_pattern_check(bad[i], &why) < 0);
		if (!i)
			CHECK_STR(why.ptr, "\"\" is not a host pattern (expected a host name such as \"api.example.com\", \"*.example.com\" for every name under example.com, or an IP address)");
		retl_buf_free(&why);
	}
}

static const char *returned(const char *url, const char *const *extra, int loopback)
{
	static const char *const sf[] = { "*.salesforce.com", "*.force.com", NULL };
	static char out[1024];
	const struct retl_url_hosts h = {
		.vendor = "Salesforce", .patterns = sf, .extra = extra, .loopback = loopback,
		.extra_key = "destinations.sf.allowed_hosts",
	};
	retl_buf why = RETL_BUF_INIT;
	int rc = retl_url_check_returned(url, &h, &why);
	snprintf(out, sizeof(out), "%s", rc == 0 ? (why.len ? "passed with a reason" : "") : why.ptr);
	retl_buf_free(&why);
	return out;
}

static void test_returned(void)
{
	static const char *const extra[] = { "sf-proxy.example.com", "*.sandbox.test", NULL };
	CHECK_STR(returned("https://acme.my.salesforce.com", NULL, 0), "");
	CHECK_STR(returned("https://acme.lightning.force.com/", NULL, 0), "");
	CHECK_STR(returned("https://sf-proxy.example.com", extra, 0), "");
	CHECK_STR(returned("https://a.b.sandbox.test:8443", extra, 0), "");
	/* the finding: plain http to a non-loopback host, even on the list */
	CHECK_STR(returned("http://192.0.2.2", NULL, 1),
		  "http://192.0.2.2: plain http:// is allowed only to a literal loopback address: 127.x.x.x or [::1] (not a name such as localhost); use https://");
	CHECK_STR(returned("http://acme.my.salesforce.com", NULL, 0),
		  "http://acme.my.salesforce.com: plain http:// is allowed only to a literal loopback address: 127.x.x.x or [::1] (not a name such as localhost); use https://");
	CHECK_STR(returned("https://evil.example", extra, 1),
		  "https://evil.example: not on Salesforce's domains (*.salesforce.com, *.force.com); a host of yours (a proxy, a test server) can be listed in destinations.sf.allowed_hosts");
	CHECK_STR(returned("https://acme.my.salesforce.com.evil.example", NULL, 0),
		  "https://acme.my.salesforce.com.evil.example: not on Salesforce's domains (*.salesforce.com, *.force.com); a host of yours (a proxy, a test server) can be listed in destinations.sf.allowed_hosts");
	CHECK_STR(returned("https://u:hunter2@acme.my.salesforce.com", NULL, 0),
		  "https://acme.my.salesforce.com: a user name or password in the URL is not allowed (not shown here); put credentials in the destination's own keys");
	/* loopback: only when the configured URL is loopback too (emulators) */
	CHECK_STR(returned("http://127.0.0.1:40001", NULL, 1), "");
	CHECK_STR(returned("http://[::1]:40001", NULL, 1), "");
	CHECK_STR(returned("http://127.0.0.1:40001", NULL, 0),
		  "http://127.0.0.1:40001: a loopback address, allowed only when the configured URL is one too; a host of yours (a proxy, a test server) can be listed in destinations.sf.allowed_hosts");
	CHECK_STR(returned("http://localhost:40001", NULL, 1),
		  "http://localhost:40001: plain http:// is allowed only to a literal loopback address: 127.x.x.x or [::1] (not a name such as localhost); use https://");
	CHECK(!strncmp(returned("not a url", NULL, 1), "not a URL (", 11));
}

int main(void)
{
	test_allowed();
	test_refused();
	test_no_secret_in_messages();
	test_is_loopback();
	test_host_match();
	test_patterns();
	test_returned();
	TEST_DONE();
}
