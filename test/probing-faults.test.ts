/**
 * No blind spots (issue 14 §1), with the real agent and fping in the fault lab: a probing node
 * whose own firewall drops its echo requests on the OUTPUT hook, and an fping that is stopped.
 * fping prints nothing for either (in loop mode its send errors are silent), so before the
 * agent counted due probes without a verdict, `sent` froze, loss read 0 % and no alert could
 * fire. Packets go only to lab namespaces this test creates.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab, type Host } from './lab/lab.ts';
import { eventually, scrape, sleep, startAgent, valueOf, type AgentProcess, type Sample } from './support/agent.ts';

const PERIOD_MS = 200;
let lab: Lab;
let src: Host;
let dst: Host;
let agent: AgentProcess;

before(async () => {
  lab = await Lab.create();
  src = await lab.addHost('src');
  dst = await lab.addHost('dst');
  // The network rule: the agent, inside src, probes only dst's lab addresses.
  await lab.assertRoutes([dst.v4, dst.v6], src);
  await lab.assertRoutes([src.v4]);
  const file = join(mkdtempSync(join(tmpdir(), 'knp-faults-')), 'targets.json');
  writeFileSync(file, JSON.stringify([{ name: 'dst', address: dst.v4 }, { name: 'dst-v6', address: dst.v6 }]));
  agent = await startAgent({
    netns: src.ns,
    waitReady: false,
    args: ['--targets-file', file, '--period', `${PERIOD_MS}ms`, '--prometheus-host', src.v4, '--log-level', 'warn'],
  });
  await eventually(async () => (valueOf((await page()), 'kube_node_ping_packets_received_total', { destination_name: 'dst' }) ?? 0) > 5, 20_000, 'replies from dst');
});

after(async () => {
  await agent?.stop();
  await lab?.destroy();
});

const page = async (): Promise<Sample[]> => (await scrape(agent.port, src.v4)).samples;
const total = (samples: Sample[], name: string) => samples.filter((s) => s.name === name).reduce((a, s) => a + s.value, 0);
const ofDst = (samples: Sample[], name: string) => valueOf(samples, name, { destination_name: 'dst' }) ?? NaN;

test('echo requests dropped on the probing node\'s OUTPUT hook count as sent and lost, and make an outage', async () => {
  const before = await page();
  await lab.exec(src, ['nft', '-f', '-'], [
    'table inet knpfault {',
    '  chain out {',
    '    type filter hook output priority 0;',
    '    icmp type echo-request drop',
    '    icmpv6 type echo-request drop',
    '  }',
    '}',
    '',
  ].join('\n'));
  try {
    // Unanswered once the timeout and the grace (2 s at this period) have passed; the outage
    // is dated from the first of them, so it is already seconds long when it is seen.
    await eventually(async () => ofDst(await page(), 'kube_node_ping_outage_ongoing_seconds') > 0, 15_000, 'an outage of dst while its requests are dropped');
    await sleep(3000);
    const during = await page();
    const sent = ofDst(during, 'kube_node_ping_packets_sent_total') - ofDst(before, 'kube_node_ping_packets_sent_total');
    const received = ofDst(during, 'kube_node_ping_packets_received_total') - ofDst(before, 'kube_node_ping_packets_received_total');
    assert.ok(sent > 10, `sent went on while nothing could be sent (+${sent})`);
    assert.ok(received < sent / 2, `+${received} received of +${sent} sent`);
    const unanswered = total(during, 'kube_node_ping_probes_unanswered_total') - total(before, 'kube_node_ping_probes_unanswered_total');
    assert.ok(unanswered >= sent - received - 2, `unanswered +${unanswered}, lost +${sent - received}`);
    assert.ok(ofDst(during, 'kube_node_ping_outage_ongoing_seconds') > 0);
    assert.ok(total(during, 'kube_node_ping_probes_intended_total') > total(before, 'kube_node_ping_probes_intended_total'));
  } finally {
    await lab.exec(src, ['nft', 'delete', 'table', 'inet', 'knpfault']);
  }
  await eventually(async () => ofDst(await page(), 'kube_node_ping_outage_ongoing_seconds') === 0, 15_000, 'the outage to end once requests leave again');
  // The sends that failed in the drop's last seconds are counted a grace after the next verdict.
  await sleep(3000);
});

test('a stopped fping: the probes due meanwhile count once each, and its catch-up counts no probe twice', async () => {
  const fping = childrenOf(agent.child.pid!);
  assert.equal(fping.length, 1, 'one fping process for the two targets');
  const before = await page();
  const t0 = Date.now();
  process.kill(fping[0]!, 'SIGSTOP');
  try {
    await sleep(6000);
    const stopped = await page();
    assert.ok(ofDst(stopped, 'kube_node_ping_packets_sent_total') - ofDst(before, 'kube_node_ping_packets_sent_total') > 5, 'sent went on while fping was stopped');
    assert.ok(ofDst(stopped, 'kube_node_ping_outage_ongoing_seconds') > 0, 'a stopped prober is an outage, not 0 % loss');
  } finally {
    process.kill(fping[0]!, 'SIGCONT');
  }
  // fping sends its backlog when it resumes: those verdicts are dropped (they were counted).
  await sleep(5000);
  const after = await page();
  const sent = ofDst(after, 'kube_node_ping_packets_sent_total') - ofDst(before, 'kube_node_ping_packets_sent_total');
  const due = (Date.now() - t0) / PERIOD_MS;
  // Each probe due in the window counted once: within a few probes (the window's edges, the grace still open at its end).
  const detail = `received +${ofDst(after, 'kube_node_ping_packets_received_total') - ofDst(before, 'kube_node_ping_packets_received_total')}, unanswered +${total(after, 'kube_node_ping_probes_unanswered_total') - total(before, 'kube_node_ping_probes_unanswered_total')} (both targets)`;
  assert.ok(sent <= due + 3, `${sent} counted for ${due.toFixed(1)} due: a probe counted twice; ${detail}`);
  assert.ok(sent >= due - (2000 + 2 * PERIOD_MS) / PERIOD_MS - 3, `${sent} counted for ${due.toFixed(1)} due`);
  assert.equal(ofDst(after, 'kube_node_ping_outage_ongoing_seconds'), 0, 'replies again');
});

/** The fping processes below `pid` (`ip netns exec` may or may not stay in between). */
function childrenOf(pid: number): number[] {
  const kids = readdirSync(`/proc/${pid}/task`).flatMap((tid) =>
    readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number),
  );
  return kids.flatMap((k) => (readFileSync(`/proc/${k}/comm`, 'utf8').trim() === 'fping' ? [k] : childrenOf(k)));
}
