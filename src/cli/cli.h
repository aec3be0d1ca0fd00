/*
 * cli.h - sluice's subcommands, dispatched from one table (cli/commands.c)
 * the way git dispatches its builtins. Each cmd_* lives in its own file and
 * returns the process exit code: 0 success, 1 failure, 2 usage or
 * configuration error.
 */
#ifndef SLUICE_CLI_CLI_H
#define SLUICE_CLI_CLI_H

struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
    const char *usage; /* full help text */
};

extern const struct command cli_commands[];

const struct command *cli_find(const char *name);
int cli_main(int argc, char **argv);

int cmd_serve(int argc, char **argv);
int cmd_dlq(int argc, char **argv);
int cmd_upload(int argc, char **argv);
int cmd_batch(int argc, char **argv);
int cmd_keys(int argc, char **argv);
int cmd_rollups(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_sentinel(int argc, char **argv);
int cmd_reload(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_ready(int argc, char **argv);
int cmd_cron(int argc, char **argv);
int cmd_job(int argc, char **argv);
int cmd_version(int argc, char **argv);
int cmd_help(int argc, char **argv);
int cmd_config_docs(int argc, char **argv);

#endif
