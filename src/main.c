/*
 * main.c - retl's entry point; everything happens in cli.c.
 */
#include "cli.h"

int main(int argc, char **argv)
{
	return retl_cli_main(argc, argv);
}
