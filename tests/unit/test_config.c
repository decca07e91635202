/*
 * test_config.c - config.c (retl.json + mappings/<sync>.json) and redact.c.
 *
 * Each case writes a throwaway project into a mkdtemp() directory, loads
 * it, and checks either the parsed structs or the exact error message.
 * The exhaustive table of error messages lives in
 * tests/integration/test_config_errors.py; this file covers the structs,
 * secret resolution and redaction, plus a handful of messages.
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "config_int.h"
#include "destination.h"
#include "err.h"
#include "mapping.h"
#include "redact.h"
#include "test.h"

#ifdef CONFIG_TEST_STUBS
/* only while mapping.c is being written; the real build links mapping.c */
struct retl_mapping { int dummy; };
int retl_mapping_parse(retl_mapping **out, const json_t *fields,
		       const char *file, struct retl_err *err)
{
	*out = calloc(1, sizeof(**out));
	return 0;
}
void retl_mapping_free(retl_mapping *m) { free(m); }
#endif

static char root[] = "/tmp/retl_test_config_XXXXXX";
static int nproject;

static void write_file(const char *dir, const char *rel, const char *text)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	for (char *p = path + strlen(dir) + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		mkdir(path, 0700);
		*p = '/';
	}
	FILE *f = fopen(path, "w");
	if (!f) {
		perror(path);
		exit(2);
	}
	fputs(text, f);
	fclose(f);
}

/* a fresh project directory holding retl.json and the given mappings */
static char *project(const char *retl_json, const char *name1, const char *sync1,
		     const char *name2, const char *sync2)
{
	size_t n = strlen(root) + 32;
	char *dir = retl_malloc(n);
	snprintf(dir, n, "%s/p%d", root, ++nproject);
	mkdir(dir, 0700);
	if (retl_json)
		write_file(dir, "retl.json", retl_json);
	char rel[256];
	if (name1) {
		snprintf(rel, sizeof(rel), "mappings/%s.json", name1);
		write_file(dir, rel, sync1);
	}
	if (name2) {
		snprintf(rel, sizeof(rel), "mappings/%s.json", name2);
		write_file(dir, rel, sync2);
	}
	return dir;
}

static const char *BASIC_RETL =
	"{\"sources\": {\"wh\": {\"dsn\": \"host=/nonexistent dbname=x\"}},\n"
	" \"destinations\": {\"out\": {\"type\": \"file\", \"path\": \"out.jsonl\"}}}\n";

static const char *BASIC_SYNC =
	"{\"source\": \"wh\", \"query\": \"SELECT 1 AS id\", \"key\": \"id\",\n"
	" \"destination\": \"out\", \"fields\": {\"id\": \"id\"}}\n";

/*
 * A project that must fail; returns the message (static).  An error in
 * retl.json fails the load; one in the mapping file leaves the sync
 * invalid; one in a connection's values shows when its secrets are read.
 */
static const char *load_error(const char *retl_json, const char *sync)
{
	static struct retl_err err;
	struct retl_config *cfg = (struct retl_config *)1;
	char *dir = project(retl_json, sync ? "x" : NULL, sync, NULL, NULL);
	int rc = retl_config_load(&cfg, dir, &err);
	free(dir);
	if (rc < 0) {
		CHECK(cfg == NULL);
		CHECK(err.code == RETL_EXIT_USAGE);
		return err.msg;
	}
	retl_err_clear(&err);
	if (cfg->ninvalid) {
		CHECK(cfg->ninvalid == 1 && cfg->nsyncs == 0);
		CHECK_STR(cfg->invalid[0].name, "x");
		snprintf(err.msg, sizeof(err.msg), "%s", cfg->invalid[0].msg);
		retl_config_free(cfg);
		return err.msg;
	}
	rc = 0;
	for (size_t i = 0; i < cfg->nsources && !rc; i++)
		rc = retl_config_resolve_source(cfg, &cfg->sources[i], &err);
	for (size_t i = 0; i < cfg->ndests && !rc; i++)
		rc = retl_config_resolve_dest(cfg, &cfg->dests[i], &err);
	CHECK(rc < 0);
	CHECK(err.code == RETL_EXIT_USAGE);
	retl_config_free(cfg);
	return err.msg;
}

static void test_full_project(void)
{
	setenv("RETL_TEST_PW", "s3cret-pw!", 1);
	setenv("RETL_TEST_HOST", "db.internal", 1);
	char *dir = project(
		"{\n"
		"  \"state\": \"var/state.db\",\n"
		"  \"sources\": {\n"
		"    \"warehouse\": {\"type\": \"postgres\",\n"
		"      \"dsn\": \"postgresql://retl:${RETL_TEST_PW}@${RETL_TEST_HOST}:5432/analytics\",\n"
		"      \"statement_timeout\": \"10min\"},\n"
		"    \"rs\": {\"type\": \"redshift\", \"dsn\": \"@file:secrets/rs_dsn\",\n"
		"      \"statement_timeout\": 2500, \"read\": \"cursor\"}\n"
		"  },\n"
		"  \"destinations\": {\n"
		"    \"out\": {\"type\": \"file\", \"path\": \"exports/${RETL_TEST_HOST}.jsonl\",\n"
		"      \"base_url\": \"http://127.0.0.1:8080/x\"}\n"
		"  }\n"
		"}\n",
		"zz_contacts",
		"{\n"
		"  \"source\": \"warehouse\",\n"
		"  \"query\": \"SELECT id, email FROM customers\",\n"
		"  \"key\": [\"id\", \"email\"],\n"
		"  \"destination\": \"out\",\n"
		"  \"object\": \"contacts\",\n"
		"  \"mode\": \"mirror\",\n"
		"  \"match\": {\"email\": \"email\"},\n"
		"  \"fields\": {\"email\": {\"from\": \"email\", \"transform\": [\"lower\"]}, \"id\": \"id\"},\n"
		"  \"on_remove\": \"delete\",\n"
		"  \"safety\": {\"max_removed\": 10, \"max_removed_ratio\": 0.25, \"refuse_empty_model\": false},\n"
		"  \"schedule\": \"*/30 * * * *\"\n"
		"}\n",
		"aa_minimal",
		"{\"source\": \"rs\", \"query\": \"SELECT 1 AS id\", \"key\": \"id\",\n"
		" \"destination\": \"out\", \"fields\": {\"id\": \"id\"}}\n");
	/* a secret file: trailing newlines are not part of the secret */
	write_file(dir, "secrets/rs_dsn", "host=rs.example dbname=dw password='p4ss w0rd'\n\n");
	/* neither hidden files nor non-.json files are syncs */
	write_file(dir, "mappings/.hidden.json", "not json");
	write_file(dir, "mappings/README.md", "notes");

	struct retl_config *cfg = NULL;
	struct retl_err err;
	int rc = retl_config_load(&cfg, dir, &err);
	CHECK(rc == 0);
	if (rc) {
		fprintf(stderr, "load failed: %s\n", err.msg);
		free(dir);
		return;
	}
	char want[4200];
	snprintf(want, sizeof(want), "%s/var/state.db", dir);
	CHECK_STR(cfg->state_path, want);
	CHECK_STR(cfg->dir, dir);

	/* nothing read yet: the verbs that never connect need no secret */
	CHECK(cfg->sources[0].unresolved != NULL);
	CHECK(cfg->sources[0].dsn == NULL);
	CHECK(cfg->dests[0].unresolved != NULL);
	CHECK(cfg->dests[0].options == NULL);
	retl_buf early = RETL_BUF_INIT;
	retl_redact_into(&early, "pw s3cret-pw!", 13);
	CHECK_STR(early.ptr, "pw s3cret-pw!");
	retl_buf_free(&early);
	for (size_t i = 0; i < cfg->nsyncs; i++)
		CHECK(retl_config_resolve(cfg, &cfg->syncs[i], &err) == 0);
	CHECK(cfg->sources[0].unresolved == NULL);
	CHECK(cfg->dests[0].unresolved == NULL);

	CHECK(cfg->nsources == 2);
	CHECK_STR(cfg->sources[0].name, "warehouse");
	CHECK_STR(cfg->sources[0].type, "postgres");
	CHECK_STR(cfg->sources[0].dsn,
		  "postgresql://retl:s3cret-pw!@db.internal:5432/analytics");
	CHECK(cfg->sources[0].statement_timeout_ms == 600000);
	CHECK_STR(cfg->sources[1].name, "rs");
	CHECK_STR(cfg->sources[1].type, "redshift");
	CHECK_STR(cfg->sources[1].dsn, "host=rs.example dbname=dw password='p4ss w0rd'");
	CHECK(cfg->sources[1].statement_timeout_ms == 2500);
	CHECK(cfg->sources[0].read == RETL_READ_AUTO);
	CHECK(cfg->sources[1].read == RETL_READ_CURSOR);

	CHECK(cfg->ndests == 1);
	CHECK_STR(cfg->dests[0].name, "out");
	CHECK_STR(cfg->dests[0].type, "file");
	CHECK_STR(cfg->dests[0].base_url, "http://127.0.0.1:8080/x");
	CHECK_STR(json_string_value(json_object_get(cfg->dests[0].options, "path")),
		  "exports/db.internal.jsonl");
	CHECK_STR(json_string_value(json_object_get(cfg->dests[0].options, "type")), "file");

	CHECK(cfg->nsyncs == 2);
	struct retl_sync_cfg *a = &cfg->syncs[0], *z = &cfg->syncs[1];
	CHECK_STR(a->name, "aa_minimal");
	CHECK_STR(a->file, "mappings/aa_minimal.json");
	CHECK(a->src == &cfg->sources[1]);
	CHECK(a->dst == &cfg->dests[0]);
	CHECK(a->nkey == 1);
	CHECK_STR(a->key[0], "id");
	CHECK(a->mode == RETL_MODE_UPSERT);
	CHECK(a->on_remove == RETL_REMOVE_IGNORE);
	CHECK(a->object == NULL);
	CHECK(a->schedule == NULL);
	CHECK(a->match == NULL);
	CHECK(a->options == NULL);
	CHECK(a->mapping != NULL);
	CHECK(json_is_object(a->fields));
	CHECK(a->safety.max_removed == -1);
	CHECK(a->safety.max_removed_ratio < 0);
	CHECK(a->safety.refuse_empty_model == 1);

	CHECK_STR(z->name, "zz_contacts");
	CHECK_STR(z->source, "warehouse");
	CHECK(z->src == &cfg->sources[0]);
	CHECK_STR(z->destination, "out");
	CHECK_STR(z->query, "SELECT id, email FROM customers");
	CHECK(z->nkey == 2);
	CHECK_STR(z->key[0], "id");
	CHECK_STR(z->key[1], "email");
	CHECK_STR(z->object, "contacts");
	CHECK(z->mode == RETL_MODE_MIRROR);
	CHECK(z->on_remove == RETL_REMOVE_DELETE);
	CHECK_STR(json_string_value(json_object_get(z->match, "email")), "email");
	CHECK(json_object_size(z->fields) == 2);
	CHECK(z->safety.max_removed == 10);
	CHECK(z->safety.max_removed_ratio == 0.25);
	CHECK(z->safety.refuse_empty_model == 0);
	CHECK_STR(z->schedule, "*/30 * * * *");
	CHECK(z->mapping != NULL);

	CHECK(retl_config_sync(cfg, "zz_contacts") == z);
	CHECK(retl_config_sync(cfg, "aa_minimal") == a);
	CHECK(retl_config_sync(cfg, "nope") == NULL);

	/* every resolved secret and the DSN passwords are now redacted */
	retl_buf b = RETL_BUF_INIT;
	const char *line = "connect postgresql://retl:s3cret-pw!@db.internal failed";
	retl_redact_into(&b, line, strlen(line));
	CHECK_STR(b.ptr, "connect postgresql://retl:[REDACTED]@[REDACTED] failed");
	retl_buf_reset(&b);
	line = "password is p4ss w0rd; dsn host=rs.example dbname=dw password='p4ss w0rd'";
	retl_redact_into(&b, line, strlen(line));
	/* the whole @file: value is the longer secret and goes first */
	CHECK_STR(b.ptr, "password is [REDACTED]; dsn [REDACTED]");
	retl_buf_free(&b);

	retl_config_free(cfg);
	free(dir);
	retl_redact_clear();
}

/* the place of a value, for errors found after parsing */
static void test_locate(void)
{
	const char *t = "{\"sources\": {\"wh\": {\"dsn\": \"${X}\"}},\n"
			" \"destinations\": {\"o\": {\"a.b\": 1, \"a\": {\"b\": [1, \"two\"]},\n"
			"   \"h\": [ {\"k\": \"v\"} ]}}}\n";
	int line = 0, col = 0;
	CHECK(retl_cfg_locate(t, strlen(t), "sources.wh.dsn", &line, &col) == 0);
	CHECK(line == 1 && col == 28);
	CHECK(retl_cfg_locate(t, strlen(t), "destinations.o.a.b[1]", &line, &col) == 0);
	CHECK(line == 2 && col == 50);
	/* a key holding a dot: the first key that leads to the whole path */
	CHECK(retl_cfg_locate(t, strlen(t), "destinations.o.a.b", &line, &col) == 0);
	CHECK(line == 2 && col == 32);
	CHECK(retl_cfg_locate(t, strlen(t), "destinations.o.h[0].k", &line, &col) == 0);
	CHECK(line == 3 && col == 17);
	CHECK(retl_cfg_locate(t, strlen(t), "destinations.o.h[1]", &line, &col) < 0);
	CHECK(retl_cfg_locate(t, strlen(t), "sources.nope", &line, &col) < 0);
	CHECK(retl_cfg_locate(t, 20, "sources.wh.dsn", &line, &col) < 0);
}

/* a mapping file that does not load is set aside; the others load */
static void test_invalid_sync_is_skipped(void)
{
	char *dir = project(BASIC_RETL, "good", BASIC_SYNC, "bad", "{\"source\": }");
	struct retl_config *cfg = NULL, *next = NULL;
	struct retl_err err;
	CHECK(retl_config_load(&cfg, dir, &err) == 0);
	CHECK(cfg->nsyncs == 1 && cfg->ninvalid == 1);
	CHECK_STR(cfg->syncs[0].name, "good");
	CHECK_STR(cfg->invalid[0].name, "bad");
	CHECK(strncmp(cfg->invalid[0].msg, "mappings/bad.json:1:", 20) == 0);
	CHECK(retl_config_invalid(cfg, "bad") == &cfg->invalid[0]);
	CHECK(retl_config_invalid(cfg, "good") == NULL);

	/* SIGHUP: good breaks too; it keeps its old definition, bad has none */
	write_file(dir, "mappings/good.json", "{\"key\": 1}");
	CHECK(retl_config_load(&next, dir, &err) == 0);
	CHECK(next->nsyncs == 0 && next->ninvalid == 2);
	CHECK(retl_config_keep_previous(next, cfg) == 1);
	CHECK(next->nsyncs == 1);
	CHECK_STR(next->syncs[0].name, "good");
	CHECK(next->syncs[0].src == &next->sources[0]);
	CHECK(next->syncs[0].dst == &next->dests[0]);
	CHECK(next->syncs[0].mapping != NULL);
	CHECK(!retl_config_invalid(next, "bad")->kept);
	CHECK(retl_config_invalid(next, "good")->kept);
	retl_config_free(cfg);
	retl_config_free(next);
	free(dir);
}

static void test_defaults(void)
{
	char *dir = project(BASIC_RETL, "only", BASIC_SYNC, NULL, NULL);
	struct retl_config *cfg = NULL;
	struct retl_err err;
	CHECK(retl_config_load(&cfg, dir, &err) == 0);
	if (cfg) {
		char want[4200];
		snprintf(want, sizeof(want), "%s/state/retl.db", dir);
		CHECK_STR(cfg->state_path, want);
		CHECK(cfg->nsyncs == 1);
		CHECK_STR(cfg->syncs[0].name, "only");
		CHECK(cfg->syncs[0].src == &cfg->sources[0]);
		CHECK_STR(cfg->sources[0].type, "postgres");
		CHECK(cfg->sources[0].statement_timeout_ms == 0);
		/* a silent host ends the run rather than hanging it */
		CHECK(cfg->sources[0].connect_timeout_ms == 10000);
		CHECK(cfg->dests[0].base_url == NULL);
	}
	retl_config_free(cfg);
	free(dir);

	/* absolute state path kept as is; durations */
	dir = project("{\"state\": \"/var/lib/retl/s.db\", \"sources\": {"
		      "\"a\": {\"dsn\": \"x\", \"statement_timeout\": \"30s\"},"
		      "\"b\": {\"dsn\": \"x\", \"statement_timeout\": \"500ms\"},"
		      "\"c\": {\"dsn\": \"x\", \"statement_timeout\": \"2h\"},"
		      "\"d\": {\"dsn\": \"x\", \"statement_timeout\": \"1h30min\"},"
		      "\"e\": {\"dsn\": \"x\", \"statement_timeout\": 0,"
		      " \"connect_timeout\": 0},"
		      "\"f\": {\"dsn\": \"x\", \"connect_timeout\": \"1500ms\"},"
		      "\"g\": {\"dsn\": \"x\", \"connect_timeout\": 3000}}}",
		      NULL, NULL, NULL, NULL);
	cfg = NULL;
	CHECK(retl_config_load(&cfg, dir, &err) == 0);
	if (cfg) {
		CHECK_STR(cfg->state_path, "/var/lib/retl/s.db");
		CHECK(cfg->sources[0].statement_timeout_ms == 30000);
		CHECK(cfg->sources[1].statement_timeout_ms == 500);
		CHECK(cfg->sources[2].statement_timeout_ms == 7200000);
		CHECK(cfg->sources[3].statement_timeout_ms == 5400000);
		CHECK(cfg->sources[4].statement_timeout_ms == 0);
		CHECK(cfg->sources[0].connect_timeout_ms == 10000);
		CHECK(cfg->sources[4].connect_timeout_ms == 0);
		CHECK(cfg->sources[5].connect_timeout_ms == 1500);
		CHECK(cfg->sources[6].connect_timeout_ms == 3000);
		CHECK(cfg->ndests == 0);
		CHECK(cfg->nsyncs == 0);  /* no mappings/ directory */
	}
	retl_config_free(cfg);
	free(dir);
	retl_redact_clear();
}

static void test_errors(void)
{
	char want[4200];
	struct retl_err err;
	struct retl_config *cfg = NULL;

	char *dir = project(NULL, NULL, NULL, NULL, NULL);
	CHECK(retl_config_load(&cfg, dir, &err) < 0);
	snprintf(want, sizeof(want),
		 "retl.json: not found in %s (is --config pointing at a retl project?)", dir);
	CHECK_STR(err.msg, want);
	CHECK(err.code == RETL_EXIT_USAGE);
	free(dir);

	CHECK_STR(load_error("{\"sources\": {}\n,}", NULL),
		  "retl.json:2:2: string or '}' expected near '}'");
	CHECK_STR(load_error("{\"state\": \"a\", \"state\": \"b\"}", NULL),
		  "retl.json:1:22: duplicate object key near '\"state\"'");
	CHECK_STR(load_error(BASIC_RETL, "{\"source\": \"wh\",\n  \"query\": \"x\" \"key\": \"id\"}"),
		  "mappings/x.json:2:20: '}' expected near '\"key\"'");
	CHECK_STR(load_error("{\"sources\": {\"warehouse\": {\"dsn\": \"x\", \"dsnn\": \"y\"}}}", NULL),
		  "retl.json: sources.warehouse.dsnn: unknown key (expected one of type, dsn, statement_timeout, connect_timeout, read, audit, audit_retention, state_schema)");
	CHECK_STR(load_error(BASIC_RETL,
			     "{\"source\": \"wh\", \"query\": \"q\", \"key\": \"id\", "
			     "\"destination\": \"hubspt\", \"fields\": {\"id\": \"id\"}}"),
		  "mappings/x.json: destination: unknown destination \"hubspt\" (defined in retl.json: out)");
	CHECK_STR(load_error(BASIC_RETL,
			     "{\"source\": \"wh\", \"query\": \"q\", \"key\": \"id\", "
			     "\"destination\": \"out\", \"mode\": \"upsrt\", \"fields\": {\"id\": \"id\"}}"),
		  "mappings/x.json: mode: unknown mode \"upsrt\" (expected one of upsert, update, insert, mirror, membership)");
	CHECK_STR(load_error(BASIC_RETL,
			     "{\"source\": \"wh\", \"query\": \"q\", \"key\": \"id\", "
			     "\"destination\": \"out\", \"mode\": \"update\", \"fields\": {\"id\": \"id\"}}"),
		  "mappings/x.json: mode: mode \"update\" is not supported by the file destination (supported: upsert, insert, mirror)");
	CHECK_STR(load_error(BASIC_RETL,
			     "{\"source\": \"wh\", \"key\": \"id\", "
			     "\"destination\": \"out\", \"fields\": {\"id\": \"id\"}}"),
		  "mappings/x.json: query: missing (required)");
	CHECK_STR(load_error(BASIC_RETL,
			     "{\"source\": \"wh\", \"query\": \"q\", \"key\": [], "
			     "\"destination\": \"out\", \"fields\": {\"id\": \"id\"}}"),
		  "mappings/x.json: key: expected a column name or a list of column names");
	CHECK_STR(load_error(BASIC_RETL,
			     "{\"source\": \"wh\", \"query\": \"q\", \"key\": \"id\", "
			     "\"destination\": \"out\", \"on_remove\": \"delete\", \"fields\": {\"id\": \"id\"}}"),
		  "mappings/x.json: on_remove: \"delete\" needs mode \"mirror\" (mode is \"upsert\"; only mirror removes records)");

	/* secrets: name the variable or the path, never the value */
	unsetenv("RETL_TEST_UNSET");
	CHECK_STR(load_error("{\"destinations\": {\"hubspot\": {\"type\": \"file\", "
			     "\"path\": \"${RETL_TEST_UNSET}\"}}}", NULL),
		  "retl.json:1:55: destinations.hubspot.path: environment variable RETL_TEST_UNSET is not set");
	CHECK_STR(load_error("{\"sources\": {\"w\": {\"dsn\": \"@file:secrets/missing\"}}}", NULL),
		  "retl.json:1:27: sources.w.dsn: cannot read secret file secrets/missing: No such file or directory");
	setenv("RETL_TEST_TIMEOUT", "tensecs", 1);
	CHECK_STR(load_error("{\"sources\": {\"w\": {\"dsn\": \"x\", "
			     "\"statement_timeout\": \"${RETL_TEST_TIMEOUT}\"}}}", NULL),
		  "retl.json:1:53: sources.w.statement_timeout: invalid duration \"[REDACTED]\" (expected e.g. \"30s\", \"10min\", \"2h\", \"500ms\", or a number of milliseconds)");
	CHECK_STR(load_error("{\"destinations\": {\"o\": {\"type\": \"file\", \"path\": \"p\", "
			     "\"base_url\": \"http://example.com\"}}}", NULL),
		  "retl.json: destinations.o.base_url: http://example.com: plain http:// is allowed only to a literal loopback address: 127.x.x.x or [::1] (not a name such as localhost); use https://");
	retl_redact_clear();
}

/*
 * Several mistakes in one sync: the one found first in the loader's fixed
 * order of keys is reported, whatever the order of the keys in the file.
 */
static void test_error_order(void)
{
	static const struct {
		const char *bad;    /* a wrong member */
		const char *good;   /* a right one for a required key, or NULL */
		const char *msg;
	} keys[] = {   /* in the order the loader looks at them */
		{ "\"source\": \"nope\"", "\"source\": \"wh\"",
		  "mappings/x.json: source: unknown source \"nope\" (defined in retl.json: wh)" },
		{ "\"query\": \"\"", "\"query\": \"q\"",
		  "mappings/x.json: query: expected a non-empty string" },
		{ "\"key\": [\"id\", \"id\"]", "\"key\": \"id\"",
		  "mappings/x.json: key: column \"id\" is listed twice" },
		{ "\"object\": 5", NULL,
		  "mappings/x.json: object: expected a non-empty string" },
		{ "\"mode\": \"upsrt\"", NULL,
		  "mappings/x.json: mode: unknown mode \"upsrt\" (expected one of upsert, update, insert, mirror, membership)" },
		{ "\"match\": {\"email\": 1}", NULL,
		  "mappings/x.json: match.email: expected a column name" },
		{ "\"fields\": []", "\"fields\": {\"id\": \"id\"}",
		  "mappings/x.json: fields: expected an object of {target field: column or field spec}" },
		{ "\"on_remove\": \"drop\"", NULL,
		  "mappings/x.json: on_remove: unknown action \"drop\" (expected one of ignore, archive, delete, unsubscribe, clear)" },
		{ "\"safety\": {\"max_removed\": -1}", NULL,
		  "mappings/x.json: safety.max_removed: expected an integer >= 0" },
		{ "\"schedule\": \"\"", NULL,
		  "mappings/x.json: schedule: expected a non-empty string" },
	};
	size_t n = sizeof(keys) / sizeof(keys[0]);
	for (size_t first = 0; first < n; first++) {
		for (int reverse = 0; reverse < 2; reverse++) {
			retl_buf b = RETL_BUF_INIT;
			retl_buf_adds(&b, "{\"destination\": \"out\"");
			for (size_t j = 0; j < n; j++) {
				size_t i = reverse ? n - 1 - j : j;
				const char *m = i >= first ? keys[i].bad : keys[i].good;
				if (m)
					retl_buf_addf(&b, ", %s", m);
			}
			retl_buf_adds(&b, "}");
			CHECK_STR(load_error(BASIC_RETL, b.ptr), keys[first].msg);
			retl_buf_free(&b);
		}
	}

	/* each safety value by its kind */
	static const char *const safety[][2] = {
		{ "5", "mappings/x.json: safety: expected an object (keys: max_removed, max_removed_ratio, refuse_empty_model)" },
		{ "{\"max_removed\": 1, \"bogus\": 1}", "mappings/x.json: safety.bogus: unknown key (expected one of max_removed, max_removed_ratio, refuse_empty_model)" },
		{ "{\"max_removed\": \"10\"}", "mappings/x.json: safety.max_removed: expected an integer >= 0" },
		{ "{\"max_removed_ratio\": 1.5}", "mappings/x.json: safety.max_removed_ratio: expected a number from 0 to 1" },
		{ "{\"max_removed_ratio\": \"0.5\"}", "mappings/x.json: safety.max_removed_ratio: expected a number from 0 to 1" },
		{ "{\"refuse_empty_model\": 1}", "mappings/x.json: safety.refuse_empty_model: expected true or false" },
		{ "{\"refuse_empty_model\": false, \"max_removed\": -2}", "mappings/x.json: safety.max_removed: expected an integer >= 0" },
	};
	for (size_t i = 0; i < sizeof(safety) / sizeof(safety[0]); i++) {
		retl_buf b = RETL_BUF_INIT;
		retl_buf_addf(&b, "{\"source\": \"wh\", \"query\": \"q\", \"key\": \"id\", "
			      "\"destination\": \"out\", \"fields\": {\"id\": \"id\"}, "
			      "\"safety\": %s}", safety[i][0]);
		CHECK_STR(load_error(BASIC_RETL, b.ptr), safety[i][1]);
		retl_buf_free(&b);
	}
}

static void test_base_urls(void)
{
	static const char *const ok[] = {
		"https://api.hubapi.com", "http://127.0.0.1",
		"http://127.1.2.3:9/x", "http://[::1]:8000/", "HTTP://127.0.0.1/",
	};
	/* names are refused for plain http, localhost too (url.h says why) */
	static const char *const bad[] = {
		"http://example.com", "http://127.0.0.1.evil.com/", "http://localhost.evil.com",
		"ftp://localhost", "https://", "localhost:8080", "http://evil.com@x/", "http://[::2]/",
		"http://localhost:8080", "HTTP://LOCALHOST/", "http://user@127.0.0.1:80",
		"http://127.attacker.test/", "https://user:pw@api.hubapi.com",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char text[512];
		snprintf(text, sizeof(text), "{\"destinations\": {\"o\": {\"type\": \"file\", "
			 "\"path\": \"p\", \"base_url\": \"%s\"}}}", ok[i]);
		char *dir = project(text, NULL, NULL, NULL, NULL);
		struct retl_config *cfg = NULL;
		struct retl_err err;
		int rc = retl_config_load(&cfg, dir, &err);
		CHECK(rc == 0);
		if (rc)
			fprintf(stderr, "  %s: %s\n", ok[i], err.msg);
		retl_config_free(cfg);
		free(dir);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[512];
		snprintf(text, sizeof(text), "{\"destinations\": {\"o\": {\"type\": \"file\", "
			 "\"path\": \"p\", \"base_url\": \"%s\"}}}", bad[i]);
		const char *msg = load_error(text, NULL);
		CHECK(!strncmp(msg, "retl.json: destinations.o.base_url: ", 36));
	}
}

static void test_redact(void)
{
	retl_buf b = RETL_BUF_INIT;
	retl_redact_add("abc");           /* too short: ignored */
	retl_redact_add("abcd");
	retl_redact_add("abcdefgh");
	retl_redact_add("abcd");          /* duplicate */
	const char *s = "xxabcdefghyy abcd abc";
	retl_redact_into(&b, s, strlen(s));
	CHECK_STR(b.ptr, "xx[REDACTED]yy [REDACTED] abc");

	char small[16] = "key=abcdefgh!";
	retl_redact_str(small, sizeof(small));
	CHECK_STR(small, "key=[REDACTED]!");
	char tiny[12] = "abcd abcd";
	retl_redact_str(tiny, sizeof(tiny));
	CHECK_STR(tiny, "[REDACTED] ");

	retl_redact_clear();
	retl_buf_reset(&b);
	retl_redact_into(&b, s, strlen(s));
	CHECK_STR(b.ptr, s);

	/* URI DSN: both the percent-encoded and the decoded password */
	retl_redact_dsn_password("postgresql://bob:p%40ss%2Fword@db:5432/x?sslmode=require");
	retl_buf_reset(&b);
	s = "raw p%40ss%2Fword decoded p@ss/word";
	retl_redact_into(&b, s, strlen(s));
	CHECK_STR(b.ptr, "raw [REDACTED] decoded [REDACTED]");
	retl_redact_clear();

	/* key=value DSN with a quoted password */
	retl_redact_dsn_password("host=db user=bob password='hun ter2' dbname=x");
	retl_buf_reset(&b);
	s = "pw hun ter2.";
	retl_redact_into(&b, s, strlen(s));
	CHECK_STR(b.ptr, "pw [REDACTED].");
	retl_redact_clear();

	/* no password, or an unparsable DSN: nothing registered, no crash */
	retl_redact_dsn_password("host=db dbname=x");
	retl_redact_dsn_password("this is = not a dsn '");
	retl_buf_reset(&b);
	retl_redact_into(&b, "host=db", 7);
	CHECK_STR(b.ptr, "host=db");
	retl_redact_clear();
	retl_buf_free(&b);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

int main(void)
{
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 2;
	}
	test_full_project();
	test_defaults();
	test_errors();
	test_error_order();
	test_base_urls();
	test_redact();
	test_locate();
	test_invalid_sync_is_skipped();
	CHECK_STR(retl_mode_name(RETL_MODE_MIRROR), "mirror");
	CHECK_STR(retl_mode_name(RETL_MODE_MEMBERSHIP), "membership");
	CHECK_STR(retl_on_remove_name(RETL_REMOVE_UNSUBSCRIBE), "unsubscribe");
	nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	TEST_DONE();
}
