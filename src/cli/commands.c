/*
 * commands.c - the command table, `sluice help` and `sluice version`.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"

const struct command cli_commands[] = {
    {"serve", cmd_serve, "run the service",
     "usage: sluice serve [--config FILE] [--listen HOST:PORT] [--data-dir DIR]\n"
     "\n"
     "Runs the HTTP service. Options override the file; SLUICE_LISTEN and\n"
     "SLUICE_DATA_DIR override the file too (the command line wins).\n"
     "Signals: SIGHUP reloads the file (datasets), SIGTERM/SIGINT stop gracefully.\n"
     "Exit codes: 0 after a clean stop, 1 on a runtime failure, 2 on a bad\n"
     "configuration (the message names the file, the line and the option).\n"},
    {"dlq", cmd_dlq, "list, show, retry and drop dead-letter entries (against a server)",
     "usage: sluice dlq list [--dataset D] [--error-code C] [--status S] [--since T] [--until T]\n"
     "                       [--order desc|asc] [--limit N] [--cursor CUR]\n"
     "       sluice dlq show ID\n"
     "       sluice dlq retry ID\n"
     "       sluice dlq retry --all [--dataset D] [--error-code C]\n"
     "       sluice dlq drop ID\n"
     "       sluice dlq drop [--dataset D] [--error-code C] [--since T] [--until T] [--all]\n"
     "                       [--dry-run]\n"
     "\n"
     "Lists are newest first (--order asc for oldest first); --cursor takes the answer's\n"
     "next_cursor. Times (--since, --until): epoch ms, RFC 3339 or a duration before now\n"
     "(30m, 24h, 7d).\n"
     "Talks to a running server: --url URL, or SLUICE_URL, default http://127.0.0.1:8080.\n"
     "Prints the server's JSON answer. Exit 0 on a 2xx, 1 on an error answer or no\n"
     "answer, 2 on a usage error.\n"},
    {"upload", cmd_upload, "upload a CSV file as a batch (against a server)",
     "usage: sluice upload DATASET FILE [--source S] [--threshold P] [--wait] [--url URL]\n"
     "\n"
     "Streams FILE to the server as a new batch of DATASET. On a terminal it shows a\n"
     "progress bar (bytes sent, rate, time left); with --wait it follows the batch\n"
     "through its states and exits 1 if it failed. Off a terminal it prints one JSON\n"
     "line: the upload's answer, or with --wait the final batch.\n"},
    {"batch", cmd_batch, "list, show and operate on batches (against a server)",
     "usage: sluice batch list [--status S] [--dataset D] [--since T] [--until T]\n"
     "                         [--order desc|asc] [--limit N] [--cursor CURSOR]\n"
     "       sluice batch show ID\n"
     "       sluice batch errors ID [--csv]\n"
     "       sluice batch download ID [-o|--output FILE]\n"
     "       sluice batch reset ID | reprocess ID\n"
     "       sluice batch fail ID [--reason TEXT]\n"
     "       sluice batch set-threshold ID PERCENT\n"
     "       sluice batch delete ID [--dry-run]\n"
     "\n"
     "list is newest first (--order asc for oldest first); --cursor takes the answer's\n"
     "next_cursor; --since/--until bound the creation time: epoch ms, RFC 3339 or a\n"
     "duration before now (30m, 24h, 7d).\n"
     "Talks to a running server (--url URL, SLUICE_URL, default http://127.0.0.1:8080)\n"
     "and prints its JSON (or CSV) answer. PERCENT is a number from 0 to 100.\n"
     "Exit 0 on a 2xx, 1 otherwise, 2 on a usage error (checked before anything is sent).\n"
     "Commands against a server send SLUICE_TOKEN as their Bearer token.\n"},
    {"keys", cmd_keys, "create, list and revoke API keys (through a server, or on the store)",
     "usage: sluice keys create --name NAME --role ROLE [--expires 90d] [--url URL | --config "
     "FILE]\n"
     "       sluice keys list [--url URL | --config FILE]\n"
     "       sluice keys revoke ID [--url URL | --config FILE]\n"
     "\n"
     "Two ways in. Through a running server with --url URL (or SLUICE_URL, when no\n"
     "--config is given): /api/v1/keys with an admin token in SLUICE_TOKEN, as the\n"
     "other commands against a server. On the store itself otherwise (--config FILE\n"
     "or SLUICE_CONFIG): no key needed, so the first admin key comes from here; a\n"
     "running server sees the change at once. --url and --config together are refused.\n"
     "ROLE is viewer, ingest, operator or admin. `create` prints the key once (only\n"
     "its hash is stored); `list` never shows it; `revoke` prints the revoked key.\n"
     "Exit 0 on success, 1 on a failure or an error answer, 2 on a usage error.\n"},
    {"reload", cmd_reload, "make a running server re-read its configuration, and say the outcome",
     "usage: sluice reload [--url URL]\n"
     "\n"
     "POST /api/v1/admin/reload (an admin token in SLUICE_TOKEN): what SIGHUP does,\n"
     "waiting for the outcome. New datasets, schema changes that keep stored rows and\n"
     "new JWT keys apply at once: it prints {\"reload\": \"applied\", \"datasets\":\n"
     "{\"added\", \"removed\", \"changed\"}, \"restart_required\": [options]} and exits 0.\n"
     "A file that does not load, or a change that would break stored rows, is\n"
     "refused and the old configuration stays: the reason (the file, the line and\n"
     "the option) goes to stderr and the exit code is 1; 2 on a usage error.\n"},
    {"doctor", cmd_doctor, "check the host, configuration and database, and say how to fix them",
     "usage: sluice doctor [--config FILE] [--json] [--probe]\n"
     "\n"
     "Checks the configuration (--config FILE or SLUICE_CONFIG), the data directory\n"
     "(exists or can be created, writable, free space), the database (opens,\n"
     "quick_check, migrations current; never migrated from here), the listen\n"
     "address (free, or already served by a sluice), auth sanity, the clock and\n"
     "the alert receivers. One line per check, [ok], [warn] or [FAIL], with a\n"
     "remedy under each warning and failure. --json prints\n"
     "{\"status\", \"checks\": [{\"name\", \"status\", \"detail\", \"remedy\"}]}.\n"
     "--probe: also probe the alert receivers.\n"
     "Exit codes: 0 when nothing failed (warnings allowed), 1 when a check failed,\n"
     "2 on a usage error.\n"},
    {"ready", cmd_ready, "exit 0 when a running server is ready (for orchestration probes)",
     "usage: sluice ready [--url URL] [--timeout SECONDS]\n"
     "\n"
     "GET /health/ready on the server (--url URL, SLUICE_URL, default\n"
     "http://127.0.0.1:8080) within --timeout seconds (default 5). Exit 0 on a 200,\n"
     "1 otherwise, with one line saying why (the status and body, or the connection\n"
     "error); 2 on a usage error.\n"},
    {"sentinel", cmd_sentinel, "run the sentinel's rules now and report (exit 0/1/2)",
     "usage: sluice sentinel [--config FILE] [--json] [--loop [--interval N]]\n"
     "\n"
     "Evaluates the sentinel's rules (stuck batches, error rate, DLQ growth, stalled\n"
     "sources, store, disk, failing and missed jobs) against the store the\n"
     "configuration names, and whether the server at `listen` answers\n"
     "/health/ready. Prints the findings (--json: the report\n"
     "{\"status\",\"checked_at\",\"findings\"}). Exit code: 0 ok, 1 warning,\n"
     "2 critical, 3 on a usage or configuration error. --loop repeats every N seconds\n"
     "(--interval, default 30; --interval without --loop is a usage error). The\n"
     "ingest latency rule needs the server's own measurements: it\n"
     "runs in the server's sentinel only.\n"},
    {"rollups", cmd_rollups, "recompute the KPI rollups from the stored data",
     "usage: sluice rollups rebuild [--config FILE]\n"
     "\n"
     "Recomputes every rollup behind /api/v1/stats and /api/v1/errors from the rollup\n"
     "ledger (a row per batch counted, and per dataset and minute for the pushes of\n"
     "each commit, written with the rollups), on the store the configuration names,\n"
     "one dataset and hour at a time: each piece is a short transaction of its own,\n"
     "so a running server's writes wait only for one piece. Prints {\"rollups\":\n"
     "\"rebuilt\", \"chunks\", \"longest_chunk_ms\", \"longest_wait_ms\", \"total_ms\"}.\n"},
    {"migrate", cmd_migrate, "copy a store into another (SQLite <-> PostgreSQL) and verify it",
     "usage: sluice migrate --from URI --to URI [--force] [--data-dir DIR]\n"
     "       sluice migrate --from URI --to URI --verify-only\n"
     "\n"
     "Copies everything the store --from holds into the store --to: every dataset's\n"
     "rows with their system columns, batches with their history and files, row\n"
     "errors, DLQ entries, idempotency keys, API keys and the key pepper (so the keys\n"
     "keep working), audit records, rollups, alerts and their events, settings.\n"
     "URIs are written as `storage:` is: sqlite:PATH, postgres://... or\n"
     "postgresql://...; either direction. Stop the servers first: the copy is of\n"
     "one moment of the source, and later writes to it are not copied.\n"
     "\n"
     "Both stores are brought to the current schema first. The dataset tables are\n"
     "made from the definitions the source recorded: no configuration is needed.\n"
     "Batch files are copied first (each checked against its sha256); then the\n"
     "target is written in one transaction, read back inside it and compared with\n"
     "the source table by table (row counts and a SHA-256 over the rows in key\n"
     "order, the same on SQLite and PostgreSQL) and file by file (sha256); it\n"
     "commits only if everything agrees. If migrate fails or is stopped, no table\n"
     "of the target changed; batch files it had copied are removed again (when\n"
     "killed, they stay as files of no batch, replaced by the next run).\n"
     "A progress bar goes to stderr on a terminal, plain lines otherwise; the\n"
     "report (one line per table) to stdout.\n"
     "\n"
     "  --force         write into a target that holds data (any row but its key\n"
     "                  pepper): its datasets are dropped and every table emptied\n"
     "                  in the same transaction, so it ends as a copy of the source.\n"
     "                  Without it migrate refuses and names what the target holds.\n"
     "  --data-dir DIR  the target's data directory: an SQLite target keeps batch\n"
     "                  files in DIR/batches (default: the database file's\n"
     "                  directory; use the target server's data_dir).\n"
     "  --verify-only   write nothing: compare the two stores as above and report.\n"
     "\n"
     "Exit codes: 0 copied (or, with --verify-only, equal) and verified; 1 refused,\n"
     "failed or different (nothing committed); 2 usage error.\n"},
    {"cron", cmd_cron, "print the next run times of a cron expression in a time zone",
     "usage: sluice cron next 'EXPR' [--tz ZONE] [--from TIME] [--count N]\n"
     "\n"
     "Prints the next N (default 5, at most 1000) run times of EXPR strictly after\n"
     "--from (epoch ms, RFC 3339 or a duration before now; default now), one a line:\n"
     "the instant in UTC, two spaces, the local time with its offset, a space, the zone:\n"
     "  2026-03-08T07:00:00Z  2026-03-08T03:00:00-04:00 America/New_York\n"
     "EXPR: 5 fields (minute hour day-of-month month day-of-week) or a macro (@daily);\n"
     "ZONE: a name from the system's zone files (default UTC). docs/scheduling.md gives\n"
     "the syntax and the daylight-saving rule. Exit 0, or 2 with the reason on stderr.\n"},
    {"job", cmd_job, "list, show, run, pause, resume and cancel scheduled jobs (against a server)",
     "usage: sluice job list [--json]\n"
     "       sluice job show NAME [--json]\n"
     "       sluice job run NAME [--wait] [--idempotency-key K] [--json]\n"
     "       sluice job history NAME [--state S] [--trigger T] [--limit N] [--before ID] [--json]\n"
     "       sluice job pause NAME | resume NAME [--json]\n"
     "       sluice job cancel RUN_ID [--json]\n"
     "\n"
     "list: a row per job (name, kind, schedule and zone, status, next run, last run's\n"
     "state); show: one job, with its next 5 times; history: its runs, newest first (run,\n"
     "trigger, state, scheduled time, duration, error or reason), --before takes the\n"
     "answer's next_before; --state is queued, running, succeeded, failed, skipped or\n"
     "canceled, --trigger schedule, manual, catchup or retry.\n"
     "run starts a manual run now (the schedule is unchanged) and prints its id; --wait\n"
     "follows it, a line per state, until it has ended; --idempotency-key K makes a retry\n"
     "of the same request answer with the same run. A run refused because one is running\n"
     "(overlap: skip) names that run. cancel stops a queued run at once, a running one at\n"
     "its runner's next check.\n"
     "--json prints the server's JSON answer instead (run --wait: the final run).\n"
     "Talks to a running server (--url URL, SLUICE_URL, default http://127.0.0.1:8080),\n"
     "sending SLUICE_TOKEN (viewer for reads, operator for the actions).\n"
     "Exit 0 on success (run --wait: the run succeeded), 1 on an error answer, no answer\n"
     "or a run that failed, was canceled or skipped (its error on stderr), 2 on a usage\n"
     "error (checked before anything is sent).\n"},
    {"version", cmd_version, "print the version", "usage: sluice version\n"},
    {"help", cmd_help, "show help for sluice or one command", "usage: sluice help [COMMAND]\n"},
    {"config-docs", cmd_config_docs, "print the configuration reference (Markdown)",
     "usage: sluice config-docs\n\nPrints docs/configuration.md, generated from the option "
     "table.\n"},
    {NULL, NULL, NULL, NULL},
};

const struct command *cli_find(const char *name)
{
    for (const struct command *c = cli_commands; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

static void overview(FILE *out)
{
    fprintf(out,
            "sluice %s - data ingestion with its operations built in\n\n"
            "usage: sluice COMMAND [ARGS]\n\ncommands:\n",
            SLUICE_VERSION);
    for (const struct command *c = cli_commands; c->name; c++)
        fprintf(out, "  %-12s %s\n", c->name, c->summary);
    fprintf(out, "\nRun 'sluice help COMMAND' for a command's options.\n");
}

int cmd_help(int argc, char **argv)
{
    if (argc < 2) {
        overview(stdout);
        return 0;
    }
    const struct command *c = cli_find(argv[1]);
    if (!c) {
        fprintf(stderr, "sluice: unknown command '%s'\n", argv[1]);
        overview(stderr);
        return 2;
    }
    printf("sluice %s - %s\n\n%s", c->name, c->summary, c->usage);
    return 0;
}

int cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("sluice %s (%s)\n", SLUICE_VERSION, SLUICE_GIT_SHA);
    return 0;
}

int cmd_config_docs(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    config_write_docs(stdout);
    return 0;
}

int cli_main(int argc, char **argv)
{
    if (argc < 2) {
        overview(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
        return cmd_help(1, argv);
    if (!strcmp(argv[1], "--version"))
        return cmd_version(1, argv);
    const struct command *c = cli_find(argv[1]);
    if (!c) {
        fprintf(stderr, "sluice: unknown command '%s'\n\n", argv[1]);
        overview(stderr);
        return 2;
    }
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("%s", c->usage);
            return 0;
        }
    return c->fn(argc - 1, argv + 1);
}
