/*
 * main.c - sluice's entry point: everything is a subcommand (cli/commands.c).
 */
#include <jansson.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "util/mem.h"

int main(int argc, char **argv)
{
    json_set_alloc_funcs(sl_malloc, free); /* jansson's allocations too (util/mem.h) */
    return cli_main(argc, argv);
}
