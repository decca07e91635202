/*
 * fuzz_sf.h - what the two Salesforce harnesses share: a loopback server
 * (tests/unit/golden_server.h) that plays the login host, and the
 * project naming it.  Salesforce opens with a token request
 * (salesforce_auth.c) and asks again after a 401, so the token comes over
 * real HTTP; what is fuzzed comes from the input.
 */
#ifndef RETL_FUZZ_SF_H
#define RETL_FUZZ_SF_H

#include "fuzz_dest.h"
#include "golden_server.h"
#include "salesforce_int.h"

#define SF_TOKENS 64

static struct golden_server sf_srv;
static char sf_base[64];
static char sf_token_body[512];
static struct gs_header sf_json_hdr = { "Content-Type", "application/json" };

/* an answer of the script: status and body, JSON */
static void sf_set(struct gs_answer *a, unsigned status, const char *body)
{
	a->status = status;
	a->h = &sf_json_hdr;
	a->nh = 1;
	a->body = (char *)body;
	a->len = strlen(body);
}

static void sf_token(struct gs_answer *a)
{
	sf_set(a, 200, sf_token_body);
}

/* the server, once per process; its base URL */
static const char *sf_server(void)
{
	if (sf_srv.d)
		return sf_base;
	if (gs_start(&sf_srv) < 0) {
		fprintf(stderr, "fuzz_sf: cannot start the loopback server\n");
		abort();
	}
	snprintf(sf_base, sizeof(sf_base), "http://127.0.0.1:%u", sf_srv.port);
	snprintf(sf_token_body, sizeof(sf_token_body),
		 "{\"access_token\":\"00DFuzz!fuzz.access\",\"instance_url\":\"%s\","
		 "\"id\":\"%s/id/00DFuzz/005Fuzz\",\"token_type\":\"Bearer\","
		 "\"issued_at\":\"1714557600000\",\"signature\":\"eA==\"}", sf_base, sf_base);
	return sf_base;
}

static struct retl_config *sf_project(long bulk_threshold)
{
	retl_buf d = RETL_BUF_INIT;
	retl_buf_addf(&d, "{\"type\": \"salesforce\", \"client_id\": \"3MVGfuzz\","
		      " \"client_secret\": \"fuzz-secret\", \"refresh_token\": \"5Aepfuzz\","
		      " \"login_url\": \"%s\", \"bulk_threshold\": %ld, \"bulk_wait\": 1,"
		      " \"max_inflight\": 1}", sf_server(), bulk_threshold);
	struct retl_config *cfg = fz_project(d.ptr,
		"{\"object\": \"Contact\", \"key\": \"id\", \"mode\": \"mirror\", \"on_remove\": \"delete\","
		" \"match\": {\"Ext__c\": \"id\"}, \"fields\": {\"Ext__c\": \"id\", \"LastName\": \"last_name\","
		" \"Email\": \"email\", \"Interests__c\": {\"from\": \"interests\", \"transform\": [{\"split\": \",\"}]}}}");
	retl_buf_free(&d);
	return cfg;
}

#endif
