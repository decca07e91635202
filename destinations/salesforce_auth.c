/*
 * salesforce_auth.c - OAuth 2.0 token requests for the Salesforce
 * destination: refresh token, client credentials and JWT bearer (RS256,
 * signed with libcrypto from the connected app's private key, usually
 * given as "@file:/run/secrets/sf_key.pem").
 *
 * The token response's instance_url is where every API call goes, with the
 * session as a Bearer token, so it is checked before anything uses it:
 * url.h's policy (https, no userinfo) and Salesforce's domains below, or
 * the destination's allowed_hosts; an emulator's loopback URL passes only
 * when the login URL is loopback too.  A refused instance_url is exit 4
 * and keeps nothing of that answer.  The token is asked for at open, and
 * once more when an API call answers 401 INVALID_SESSION_ID (the caller
 * then replays the request).  A refused
 * token request is exit 4 with Salesforce's error_description.
 */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "salesforce_int.h"
#include "url.h"

/*
 * The hosts an instance_url may name.  Salesforce serves an org's API on
 * its My Domain, https://<name>.my.salesforce.com (sandboxes under
 * sandbox.my.salesforce.com), or on an instanced host such as
 * https://na123.salesforce.com; Lightning pages on *.force.com.  Salesforce
 * Help, "My Domain"
 * (https://help.salesforce.com/apex/HTViewHelpDoc?id=domain_name_overview.htm:
 * "A My Domain uses Salesforce domain suffixes such as my.salesforce.com")
 * and "Set the My Domain Login Policy"
 * (https://help.salesforce.com/s/articleView?id=xcloud.domain_name_setting_login_policy.htm:
 * instanced URLs such as https://eu55.salesforce.com); "My Domain URL
 * Formats" in the Identity Implementation Guide lists the suffixes.
 * *.salesforce.mil (the US government clouds) and *.cloudforce.com (older
 * orgs) are Salesforce's too; those two were not checked against a
 * Salesforce page.  Anything else (a proxy, a test server, another
 * Salesforce suffix) goes in the destination's allowed_hosts.
 */
static const char *const sf_hosts[] = {
	"*.salesforce.com", "*.force.com", "*.cloudforce.com", "*.salesforce.mil", NULL
};

/* 0 when the token answer's instance_url may receive the session */
static int check_instance(struct sf_ctx *c, const char *inst, struct retl_err *err)
{
	retl_buf why = RETL_BUF_INIT, key = RETL_BUF_INIT;
	retl_buf_addf(&key, "destinations.%s.allowed_hosts", c->base.dc->name);
	const struct retl_url_hosts h = {
		.vendor = "Salesforce", .patterns = sf_hosts, .extra = c->allowed,
		.loopback = retl_url_is_loopback(c->base.url), .extra_key = key.ptr,
	};
	int rc = 0;
	if (retl_url_check_returned(inst, &h, &why) < 0)
		rc = retl_err_set(err, RETL_EXIT_DEST,
				  "salesforce: the token answer's instance_url is refused, nothing was sent to it: %s",
				  why.ptr);
	retl_buf_free(&why);
	retl_buf_free(&key);
	return rc;
}

static void form_add(retl_buf *b, const char *k, const char *v)
{
	static const char hex[] = "0123456789ABCDEF";
	if (b->len)
		retl_buf_addc(b, '&');
	retl_buf_adds(b, k);
	retl_buf_addc(b, '=');
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~", *p)) {
			retl_buf_addc(b, (char)*p);
		} else {
			retl_buf_addc(b, '%');
			retl_buf_addc(b, hex[*p >> 4]);
			retl_buf_addc(b, hex[*p & 15]);
		}
	}
}

static void b64url(retl_buf *out, const unsigned char *p, size_t n)
{
	static const char t[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t i;
	for (i = 0; i + 2 < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
		retl_buf_addc(out, t[v >> 18 & 63]);
		retl_buf_addc(out, t[v >> 12 & 63]);
		retl_buf_addc(out, t[v >> 6 & 63]);
		retl_buf_addc(out, t[v & 63]);
	}
	if (n - i == 1) {
		unsigned v = (unsigned)p[i] << 16;
		retl_buf_addc(out, t[v >> 18 & 63]);
		retl_buf_addc(out, t[v >> 12 & 63]);
	} else if (n - i == 2) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
		retl_buf_addc(out, t[v >> 18 & 63]);
		retl_buf_addc(out, t[v >> 12 & 63]);
		retl_buf_addc(out, t[v >> 6 & 63]);
	}
}

/* header.claims.signature, RS256 */
static int jwt(struct sf_ctx *c, retl_buf *out, struct retl_err *err)
{
	json_t *claims = json_pack("{s:s, s:s, s:s, s:I}", "iss", c->client_id,
				   "sub", c->username, "aud", c->audience,
				   "exp", (json_int_t)time(NULL) + 180);
	char *cj = json_dumps(claims, JSON_COMPACT);
	static const char hdr[] = "{\"alg\":\"RS256\"}";
	BIO *bio = BIO_new_mem_buf(c->private_key, -1);
	EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char *sig = NULL;
	size_t siglen = 0;
	int rc = -1;

	b64url(out, (const unsigned char *)hdr, strlen(hdr));
	retl_buf_addc(out, '.');
	b64url(out, (const unsigned char *)cj, strlen(cj));
	if (!key) {
		retl_err_set(err, RETL_EXIT_USAGE,
			     "retl.json: destinations.%s.private_key: not a PEM private key (give the connected app's key, e.g. \"@file:/run/secrets/sf_key.pem\")",
			     c->base.dc->name);
		goto out;
	}
	if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(md, NULL, &siglen, (unsigned char *)out->ptr, out->len) != 1) {
		retl_err_set(err, RETL_EXIT_DEST, "salesforce: cannot sign the JWT (RS256)");
		goto out;
	}
	sig = retl_malloc(siglen);
	if (EVP_DigestSign(md, sig, &siglen, (unsigned char *)out->ptr, out->len) != 1) {
		retl_err_set(err, RETL_EXIT_DEST, "salesforce: cannot sign the JWT (RS256)");
		goto out;
	}
	retl_buf_addc(out, '.');
	b64url(out, sig, siglen);
	rc = 0;
out:
	free(sig);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(key);
	BIO_free(bio);
	free(cj);
	json_decref(claims);
	return rc;
}

int sf_auth(struct sf_ctx *c, struct retl_err *err)
{
	retl_buf body = RETL_BUF_INIT, url = RETL_BUF_INIT;
	json_t *root = NULL;
	int rc = -1;

	switch (c->grant) {
	case SF_REFRESH:
		form_add(&body, "grant_type", "refresh_token");
		form_add(&body, "client_id", c->client_id);
		if (c->client_secret)
			form_add(&body, "client_secret", c->client_secret);
		form_add(&body, "refresh_token", c->refresh_token);
		break;
	case SF_CLIENT:
		form_add(&body, "grant_type", "client_credentials");
		form_add(&body, "client_id", c->client_id);
		form_add(&body, "client_secret", c->client_secret);
		break;
	case SF_JWT: {
		retl_buf j = RETL_BUF_INIT;
		if (jwt(c, &j, err) < 0) {
			retl_buf_free(&j);
			goto out;
		}
		form_add(&body, "grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer");
		form_add(&body, "assertion", j.ptr);
		retl_buf_free(&j);
		break;
	}
	}
	struct retl_http_req *req = retl_http_req_new();
	retl_buf_addf(&url, "%s/services/oauth2/token", c->base.url);
	req->method = "POST";
	req->url = retl_buf_detach(&url);
	req->content_type = "application/x-www-form-urlencoded";
	req->idempotent = 1;
	retl_buf_add(&req->body, body.ptr, body.len);
	retl_http_submit(c->tok, req);
	struct retl_http_req *r;
	while ((r = retl_http_next(c->tok, 1)) && r != req)
		retl_http_req_free(r);
	c->calls++;
	json_error_t je;
	root = req->resp.len ? json_loadb(req->resp.ptr, req->resp.len, 0, &je) : NULL;
	if (req->status <= 0) {
		retl_err_set(err, RETL_EXIT_DEST, "salesforce: cannot reach %s: %s",
			     c->base.url, req->error[0] ? req->error : "no response");
	} else if (req->status != 200) {
		const char *e = json_string_value(json_object_get(root, "error"));
		const char *d = json_string_value(json_object_get(root, "error_description"));
		retl_err_set(err, RETL_EXIT_DEST,
			     "salesforce: token request refused (HTTP %ld %s): %s",
			     req->status, e ? e : "error", d ? d : "no error_description");
	} else {
		const char *tok = json_string_value(json_object_get(root, "access_token"));
		const char *inst = json_string_value(json_object_get(root, "instance_url"));
		if (!tok || !inst) {
			retl_err_set(err, RETL_EXIT_DEST,
				     "salesforce: the token response has no access_token or instance_url");
		} else if (check_instance(c, inst, err) == 0) {
			size_t il = strlen(inst);
			while (il && inst[il - 1] == '/')
				il--;
			free(c->instance);
			c->instance = retl_strndup(inst, il);
			retl_buf a = RETL_BUF_INIT;
			retl_buf_addf(&a, "Authorization: Bearer %s", tok);
			if (c->base.auth) {
				memset(c->base.auth, 0, strlen(c->base.auth));
				free(c->base.auth);
			}
			c->base.auth = retl_buf_detach(&a);
			if (c->base.http)
				retl_http_set_auth(c->base.http, c->base.auth);
			rc = 0;
		}
	}
	retl_http_req_free(req);
out:
	json_decref(root);
	retl_buf_free(&body);
	retl_buf_free(&url);
	return rc;
}
