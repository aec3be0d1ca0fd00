/*
 * main.c - sluice's entry point: everything is a subcommand (cli/commands.c).
 */
#include "cli/cli.h"

int main(int argc, char **argv)
{
    return cli_main(argc, argv);
}
