// Scenarios of the fake driver: the fake host's NAME (fake://NAME) says how its simulated
// hardware misbehaves, so a demo or an end-to-end test can show every error state without
// scripting anything (after baremetal-operator's demo driver, which acts on host names such
// as `demo-registration-error`). A scenario is matched by prefix, so `fail-inspect-2` is a
// second host failing inspection. Keep this table and docs/fake-driver.md in step.
//
// | NAME starts with  | what the simulated host does                                                   |
// |-------------------|--------------------------------------------------------------------------------|
// | fail-register     | identify() throws BmcRefused: registration fails                               |
// | bad-credentials   | every BMC call throws BmcAuthenticationError unless password is correct-horse   |
// | fail-inspect      | the agent's inspect operation fails                                            |
// | fail-provision    | the agent's deploy operation fails (and erases what it wrote)                  |
// | fail-clean        | the agent's clean operation fails (the disk keeps its data)                    |
// | fail-power        | power.set and power.reboot throw BmcRefused (power.get still answers)          |
// | flaky             | each BMC call has a 30% chance of BmcUnreachable (uses the injected random)     |
// | slow              | every delay (power, agent operations, calls) is 10 times longer                |
// | no-secure-boot    | secure boot is not supported (capable: false); enabling it is refused          |
// | anything else     | a healthy host                                                                 |
//
// FakeFleet.heal(name) turns the failing behaviour off at runtime (a "fixed" host), so tests can
// prove that a host in error recovers; no-secure-boot and slow describe the hardware and stay.

export const FAKE_SCENARIOS = [
  'fail-register',
  'bad-credentials',
  'fail-inspect',
  'fail-provision',
  'fail-clean',
  'fail-power',
  'flaky',
  'slow',
  'no-secure-boot',
] as const;

export type FakeScenario = (typeof FAKE_SCENARIOS)[number] | 'healthy';

/** The password a `bad-credentials` host accepts (any username). */
export const BAD_CREDENTIALS_PASSWORD = 'correct-horse';

/** Chance that a `flaky` host's BMC call fails as unreachable. */
export const FLAKY_FAILURE_RATE = 0.3;

/** How much longer everything takes on a `slow` host. */
export const SLOW_FACTOR = 10;

/** Scenarios that heal() switches off; the others describe the hardware itself. */
export const HEALABLE_SCENARIOS: ReadonlySet<FakeScenario> = new Set<FakeScenario>([
  'fail-register',
  'bad-credentials',
  'fail-inspect',
  'fail-provision',
  'fail-clean',
  'fail-power',
  'flaky',
]);

export function scenarioOf(name: string): FakeScenario {
  return FAKE_SCENARIOS.find((prefix) => name.startsWith(prefix)) ?? 'healthy';
}
