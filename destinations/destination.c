/*
 * destination.c - the table of destinations.
 */
#include "destination.h"

#include <string.h>

static const struct retl_destination *const table[] = {
	&retl_dest_file,
	&retl_dest_hubspot,
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
	return "file, hubspot";
}
