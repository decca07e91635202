/*
 * fuzz_config.c - config loading (src/config*.c): the input is a retl.json
 * and one sync file, separated by a "%%" line (fuzz.h).  They are written
 * to a scratch project, retl.json and mappings/fuzz.json, and loaded with
 * retl_config_load, as every verb does, then every connection's secrets
 * read as a verb that connects reads them.  A refused config must say why; a
 * loaded one is looked up by its sync's name and freed.
 */
#include <stdint.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct fz_part part[2];
	struct retl_config *cfg = NULL;
	struct retl_err err;
	if (size > 1 << 16)
		return 0;
	if (!ready) {
		fz_mkdir("project");
		fz_mkdir("project/mappings");
		/* what ${FUZZ_SECRET} in a config reads */
		setenv("FUZZ_SECRET", "s3cret-value", 1);
		ready = 1;
	}
	size_t n = fz_split(data, size, part, 2);
	free(fz_write("project/retl.json", part[0].p, part[0].n));
	free(fz_write("project/mappings/fuzz.json", n > 1 ? part[1].p : "", n > 1 ? part[1].n : 0));
	char *dir = fz_path("project");
	retl_err_clear(&err);
	if (retl_config_load(&cfg, dir, &err) == 0) {
		if (!cfg)
			fz_fail("loaded without a config", NULL);
		for (size_t i = 0; i < cfg->nsyncs; i++)
			if (retl_config_sync(cfg, cfg->syncs[i].name) != &cfg->syncs[i])
				fz_fail("a loaded sync is not found by its name", cfg->syncs[i].name);
		for (size_t i = 0; i < cfg->ninvalid; i++)
			if (!cfg->invalid[i].msg[0])
				fz_fail("an invalid sync without a message", cfg->invalid[i].name);
		/* the secrets, as a verb that connects reads them: a message
		 * found then is placed in retl.json's text (config_locate.c) */
		for (size_t i = 0; i < cfg->nsources + cfg->ndests; i++) {
			retl_err_clear(&err);
			int rc = i < cfg->nsources ?
				retl_config_resolve_source(cfg, &cfg->sources[i], &err) :
				retl_config_resolve_dest(cfg, &cfg->dests[i - cfg->nsources], &err);
			if (rc < 0 && !err.msg[0])
				fz_fail("a refused connection without a message", NULL);
			if (rc < 0 && strstr(err.msg, "s3cret-value") &&
			    !memmem(data, size, "s3cret-value", 12))
				fz_fail("a connection error shows a secret", err.msg);
		}
		retl_config_free(cfg);
	} else {
		if (!err.msg[0])
			fz_fail("a refused config without a message", NULL);
		/* secrets are never echoed in messages (unless the input
		 * holds the text itself, not only ${FUZZ_SECRET}) */
		if (strstr(err.msg, "s3cret-value") &&
		    !memmem(data, size, "s3cret-value", 12))
			fz_fail("a config error shows a secret", err.msg);
	}
	free(dir);
	return 0;
}
