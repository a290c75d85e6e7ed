// Lab profiles: what hardware mix the simulated rack holds. A profile is a list of groups, each
// `count` identical machines; `ingot lab --profile FILE` reads one (YAML or JSON).
import { readFile } from 'node:fs/promises';
import { Type, type Static } from 'typebox';
import { Compile } from 'typebox/compile';
import { parse as parseYaml } from 'yaml';

/**
 * Disk kinds and how they appear over Redfish (Drive.Protocol / Drive.MediaType):
 * nvme = NVMe SSD, ssd = SATA SSD, sata = SATA HDD (7200 rpm), hdd = SAS HDD (7200 rpm),
 * virtio = a virtio-blk disk on PCIe (what lab VMs have; Linux names it vdX).
 */
export const DISK_TYPES = ['nvme', 'sata', 'ssd', 'hdd', 'virtio'] as const;
export type DiskType = (typeof DISK_TYPES)[number];

export const DiskProfile = Type.Object(
  {
    sizeGiB: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024 * 1024, description: 'disk size in GiB; backed by a sparse file' })),
    /** For small test disks (deploy tests write and read them whole); give sizeGiB or sizeMiB. */
    sizeMiB: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024 * 1024 * 1024, description: 'disk size in MiB, instead of sizeGiB' })),
    type: Type.Enum(DISK_TYPES),
  },
  { additionalProperties: false },
);

export const GpuProfile = Type.Object(
  {
    model: Type.String({ minLength: 1, maxLength: 128 }),
    count: Type.Integer({ minimum: 1, maximum: 16 }),
  },
  { additionalProperties: false },
);

export const ProfileGroup = Type.Object(
  {
    name: Type.Optional(Type.String({ maxLength: 63, description: 'label for the group (shown in the Model string)' })),
    count: Type.Integer({ minimum: 1, maximum: 10_000 }),
    cpus: Type.Integer({ minimum: 1, maximum: 8, description: 'processor sockets' }),
    coresPerCpu: Type.Optional(Type.Integer({ minimum: 1, maximum: 512 })),
    threadsPerCore: Type.Optional(Type.Integer({ minimum: 1, maximum: 8 })),
    ramGiB: Type.Integer({ minimum: 1, maximum: 64 * 1024 }),
    disks: Type.Array(DiskProfile, { minItems: 0, maxItems: 32 }),
    gpus: Type.Optional(Type.Array(GpuProfile, { maxItems: 8 })),
    nics: Type.Optional(Type.Integer({ minimum: 1, maximum: 16, description: 'network interfaces; the first is the boot NIC' })),
    secureBootCapable: Type.Optional(Type.Boolean()),
    manufacturer: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    model: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  },
  { additionalProperties: false },
);
export type ProfileGroup = Static<typeof ProfileGroup>;

export const LabProfile = Type.Object(
  {
    groups: Type.Array(ProfileGroup, { minItems: 1, maxItems: 256 }),
  },
  { additionalProperties: false },
);
export type LabProfile = Static<typeof LabProfile>;

/** The machine every lab has when no profile is given: small, two 10 GiB disks, secure-boot capable. */
export const DEFAULT_GROUP: ProfileGroup = {
  count: 1,
  cpus: 2,
  coresPerCpu: 8,
  threadsPerCore: 2,
  ramGiB: 32,
  disks: [
    { sizeGiB: 10, type: 'nvme' },
    { sizeGiB: 10, type: 'sata' },
  ],
  gpus: [],
  nics: 2,
  secureBootCapable: true,
};

const MAX_PROFILE_BYTES = 256 * 1024;
const MAX_TOTAL_SYSTEMS = 10_000;
const checkProfile = Compile(LabProfile);

export class ProfileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProfileError';
  }
}

/** Validates a parsed profile document; throws ProfileError naming the field and the fix. */
export function validateProfile(doc: unknown, source = 'profile'): LabProfile {
  if (!checkProfile.Check(doc)) {
    const problems = [...checkProfile.Errors(doc)].slice(0, 5).map((e) => {
      const where = (e as { instancePath?: string }).instancePath || '/';
      return `${where}: ${e.message}`;
    });
    throw new ProfileError(
      `${source} is not a valid lab profile (${problems.join('; ')}); expected {groups: [{count, cpus, ramGiB, disks: [{sizeGiB, type: nvme|sata|ssd|hdd}], gpus?: [{model, count}], secureBootCapable?}]}`,
    );
  }
  doc.groups.forEach((g, i) =>
    g.disks.forEach((d, j) => {
      if ((d.sizeGiB === undefined) === (d.sizeMiB === undefined)) {
        throw new ProfileError(`${source}: /groups/${i}/disks/${j} must give exactly one of sizeGiB or sizeMiB`);
      }
    }),
  );
  const total = doc.groups.reduce((n, g) => n + g.count, 0);
  if (total > MAX_TOTAL_SYSTEMS) throw new ProfileError(`${source} describes ${total} systems; at most ${MAX_TOTAL_SYSTEMS} are supported`);
  return doc;
}

/** Parses a profile from text: JSON if it looks like JSON, YAML otherwise. */
export function parseProfile(text: string, source = 'profile'): LabProfile {
  if (text.length > MAX_PROFILE_BYTES) throw new ProfileError(`${source} is larger than ${MAX_PROFILE_BYTES} bytes`);
  let doc: unknown;
  try {
    doc = text.trimStart().startsWith('{') ? JSON.parse(text) : parseYaml(text, { maxAliasCount: 100 });
  } catch (err) {
    throw new ProfileError(`${source} could not be parsed as YAML or JSON: ${(err as Error).message}`);
  }
  return validateProfile(doc, source);
}

export async function loadProfile(file: string): Promise<LabProfile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ProfileError(`cannot read lab profile ${file}: ${(err as Error).message}`);
  }
  return parseProfile(text, file);
}

/**
 * The hardware of `hosts` machines: the profile's groups in order, truncated to `hosts`, and
 * padded with the default machine when the profile describes fewer.
 */
export function expandProfile(profile: LabProfile | undefined, hosts: number): ProfileGroup[] {
  const out: ProfileGroup[] = [];
  for (const group of profile?.groups ?? []) {
    for (let i = 0; i < group.count && out.length < hosts; i++) out.push(group);
  }
  while (out.length < hosts) out.push(DEFAULT_GROUP);
  return out;
}
