// The last part of cleaning: the firmware a tenant could have flashed must be what the
// platform approved before the next tenant gets the machine (DESIGN.md "deprovisioning";
// Ironic's security guidance on firmware persisting between tenants).
import type { FirmwareComponent } from '../../drivers/driver.js';

/**
 * Approved versions per firmware component, keyed by the component's id or name as the BMC
 * reports it. A component not listed is not checked; an empty map checks nothing.
 */
export type ApprovedFirmware = Record<string, string[]>;

/** Returns one sentence per component whose version is not approved (empty when all are). */
export function unapprovedFirmware(components: FirmwareComponent[], approved: ApprovedFirmware): string[] {
  const problems: string[] = [];
  for (const component of components) {
    const allowed = approved[component.id] ?? approved[component.name];
    if (allowed && !allowed.includes(component.version)) {
      problems.push(`${component.name} (${component.id}) runs ${component.version}, approved: ${allowed.join(', ')}`);
    }
  }
  return problems;
}
