// `ingot audit …`: read the audit trail and check its hash chain (docs/audit.md). Reads only:
// the trail is append-only and nothing here can change it.
import type { Command } from 'commander';
import type { AuditEvent, AuditListOptions } from '../../client/index.js';
import { AUDIT_OUTCOMES, type AuditOutcome } from '../../model/audit-event.js';
import { CliError } from '../cli-error.js';
import type { CommandContext } from '../context.js';
import { parseDuration } from '../duration.js';
import { parseOutputFormat, render, renderTable } from '../output.js';
import { parseWholeNumber } from '../positive-int.js';

const OUTPUT_HELP = 'output format: table (default), json, yaml';
const MAX_PAGE = 1000;

interface FilterFlags {
  actor?: string;
  action?: string;
  outcome?: string;
}

function filters(opts: FilterFlags): Pick<AuditListOptions, 'actor' | 'action' | 'outcome'> {
  const f: Pick<AuditListOptions, 'actor' | 'action' | 'outcome'> = {};
  if (opts.actor !== undefined) {
    if (opts.actor.length === 0 || opts.actor.length > 300) throw new CliError('--actor must be 1 to 300 characters: the ACTOR column of `ingot audit list`');
    f.actor = opts.actor;
  }
  if (opts.action !== undefined) {
    if (!/^[a-z][a-z0-9-]*:[a-z][a-z0-9-]*$/.test(opts.action) || opts.action.length > 100) {
      throw new CliError(`--action "${opts.action}" is not an action; use the form resource:verb, e.g. secret:create, auth:failed`);
    }
    f.action = opts.action;
  }
  if (opts.outcome !== undefined) {
    if (!(AUDIT_OUTCOMES as readonly string[]).includes(opts.outcome)) throw new CliError(`--outcome ${opts.outcome}: use one of ${AUDIT_OUTCOMES.join(', ')}`);
    f.outcome = opts.outcome as AuditOutcome;
  }
  return f;
}

const withFilters = (c: Command) =>
  c
    .option('--actor <actor>', 'only events by this actor (exactly as the ACTOR column shows it)')
    .option('--action <action>', 'only this action, e.g. secret:create, token:revoke, auth:failed')
    .option('--outcome <outcome>', `only this outcome: ${AUDIT_OUTCOMES.join(', ')}`);

export function registerAudit(program: Command, ctx: CommandContext): void {
  const audit = program.command('audit').description('read the audit trail and verify its hash chain');

  withFilters(audit.command('list'))
    .description('the newest audit events, oldest first')
    .option('--limit <n>', `at most this many events (1 to ${MAX_PAGE})`, '50')
    .option('--before-seq <seq>', 'only events before this seq (to page back)')
    .option('-o, --output <format>', OUTPUT_HELP)
    .action(ctx.run(async (opts: FilterFlags & { limit?: string; beforeSeq?: string; output?: string }) => {
      const format = parseOutputFormat(opts.output);
      const limit = parseWholeNumber(opts.limit ?? '50', '--limit', MAX_PAGE);
      const beforeSeq = opts.beforeSeq === undefined ? undefined : parseWholeNumber(opts.beforeSeq, '--before-seq', Number.MAX_SAFE_INTEGER);
      const newestFirst = await ctx.client().audit.list({ ...filters(opts), limit, order: 'desc', ...(beforeSeq !== undefined ? { beforeSeq } : {}) });
      const items = newestFirst.reverse();
      if (format === 'table' && items.length === 0) {
        ctx.out.write(opts.actor || opts.action || opts.outcome ? 'no audit events match these filters\n' : 'no audit events yet\n');
        return;
      }
      ctx.out.write(render({ items }, format, () => auditTable(items)));
    }));

  withFilters(audit.command('tail'))
    .description('the last few audit events; with --follow, new ones as they are recorded')
    .option('-n, --lines <n>', 'how many past events to show first', '10')
    .option('-f, --follow', 'keep polling for new events until interrupted (Ctrl-C)')
    .option('--interval <duration>', 'how often --follow polls', '2s')
    .option('-o, --output <format>', 'table (default: one line per event) or json (one JSON object per line)')
    .action(ctx.run(async (opts: FilterFlags & { lines?: string; follow?: boolean; interval?: string; output?: string }) => {
      const format = parseOutputFormat(opts.output);
      if (format === 'yaml') throw new CliError('-o yaml does not stream; use -o json (one object per line) or -o table');
      const lines = parseWholeNumber(opts.lines ?? '10', '--lines', MAX_PAGE, 0);
      const intervalMs = parseDuration(opts.interval ?? '2s', '--interval');
      const f = filters(opts);
      const client = ctx.client();
      const print = (e: AuditEvent) => ctx.out.write(format === 'json' ? JSON.stringify(e) + '\n' : auditLine(e) + '\n');
      // Start the cursor at the trail's current end (whatever the filters), so --follow with
      // --lines 0 shows only what happens from now on.
      const latest = await client.audit.list({ limit: 1, order: 'desc' });
      let afterSeq = latest[0]?.seq ?? 0;
      if (lines > 0) {
        const last = (await client.audit.list({ ...f, limit: lines, order: 'desc' })).reverse();
        for (const e of last) print(e);
        afterSeq = Math.max(afterSeq, last[last.length - 1]?.seq ?? 0);
      }
      if (!opts.follow) return;
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        while (!stop.signal.aborted) {
          await sleep(intervalMs, stop.signal);
          if (stop.signal.aborted) break;
          for (;;) {
            const page = await client.audit.list({ ...f, afterSeq, limit: MAX_PAGE, order: 'asc' });
            for (const e of page) print(e);
            if (page.length > 0) afterSeq = page[page.length - 1]!.seq;
            if (page.length < MAX_PAGE) break;
          }
        }
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
      process.exitCode = 130;
    }));

  audit
    .command('verify')
    .description("check the audit trail's hash chain: exit 0 when intact, 1 naming the first bad event")
    .option('-o, --output <format>', OUTPUT_HELP)
    .action(ctx.run(async (opts: { output?: string }) => {
      const format = parseOutputFormat(opts.output);
      const verdict = await ctx.client().audit.verify();
      if (format !== 'table') {
        ctx.out.write(render(verdict, format, () => ''));
        if (!verdict.ok) process.exitCode = 1;
        return;
      }
      if (verdict.ok) {
        ctx.out.write(`audit chain OK: ${verdict.count} events, head ${verdict.head.hash} (seq ${verdict.head.seq})\n`);
        return;
      }
      throw new CliError(
        [
          `audit chain BROKEN at seq ${verdict.seq}${verdict.id ? ` (event ${verdict.id})` : ''}: ${verdict.message}`,
          `  ${verdict.count} events before it verified; the trail was changed outside Ingot.`,
          '  Compare with a copy kept elsewhere (the JSONL file or webhook sink, docs/audit.md) and treat the database as suspect.',
        ].join('\n'),
      );
    }));
}

export function auditTable(events: AuditEvent[]): string {
  return renderTable(
    ['SEQ', 'TIME', 'ACTOR', 'ACTION', 'TARGET', 'OUTCOME', 'REASON'],
    events.map((e) => [String(e.seq), e.time, e.actor, e.action, target(e), outcome(e), oneLine(e.reason)]),
  );
}

/** One event per line for `tail`, where a table's column widths cannot be known ahead. */
export function auditLine(e: AuditEvent): string {
  const reason = e.reason ? `: ${oneLine(e.reason)}` : '';
  return `${e.seq} ${e.time} ${outcome(e)} ${e.action} ${target(e) || '-'} by ${e.actor}${reason}`;
}

/** `denied x599` for an event standing for repeated identical refusals. */
function outcome(e: AuditEvent): string {
  return e.repeatCount ? `${e.outcome} x${e.repeatCount}` : e.outcome;
}

function target(e: AuditEvent): string {
  const t = e.target ?? { kind: '', project: '', name: '' };
  if (!t.kind && !t.name) return '';
  return `${t.project ? `${t.project}/` : ''}${t.kind}${t.name ? `/${t.name}` : ''}`;
}

function oneLine(s: string | undefined): string {
  const line = (s ?? '').replace(/\s*\n\s*/g, ' ');
  return line.length > 120 ? line.slice(0, 119) + '…' : line;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
