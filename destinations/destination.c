/*
 * destination.c - the table of destinations.
 */
#include "destination.h"

#include <string.h>

static const struct retl_destination *const table[] = {
	&retl_dest_file,
	&retl_dest_hubspot,
	&retl_dest_airtable,
	&retl_dest_webhook,
	&retl_dest_mailchimp,
};

const struct retl_destination *retl_destination_find(const char *type)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (!strcmp(table[i]->name, type))
			return table[i];
	return NULL;
}

const char *retl_destination_names(void)
{
	return "file, hubspot, airtable, webhook, mailchimp";
}

int retl_dest_opt_str(const struct retl_dest_cfg *dc, const char *key,
		      const char *what, const char **out, struct retl_err *err)
{
	json_t *v = json_object_get(dc->options, key);
	*out = NULL;
	if (!v)
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "retl.json: destinations.%s.%s: missing (%s)",
				    dc->name, key, what);
	if (!json_is_string(v) || !json_string_length(v))
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "retl.json: destinations.%s.%s: expected a non-empty string",
				    dc->name, key);
	*out = json_string_value(v);
	return 0;
}

int retl_dest_opt_posint(const struct retl_dest_cfg *dc, const char *key,
			 long def, long *out, struct retl_err *err)
{
	json_t *v = json_object_get(dc->options, key);
	*out = def;
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) <= 0)
		return retl_err_set(err, RETL_EXIT_USAGE,
				    "retl.json: destinations.%s.%s: expected a positive integer",
				    dc->name, key);
	*out = (long)json_integer_value(v);
	return 0;
}
