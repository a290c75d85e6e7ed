// How the lab's state looks as Redfish resources: one function per resource, pure apart from
// reading the fleet. Each type declares the DMTF schema version kept in
// test/fixtures/redfish-schemas, and src/lab/redfish-conformance.test.ts validates every
// resource served against exactly that schema.
import { BIOS_ATTRIBUTES, BOOT_MODES, BOOT_OVERRIDE_ENABLED, BOOT_TARGETS, RESET_TYPES, nameUuid, type SystemState } from './lab-model.js';
import type { LabFleet, LabTask } from './lab-fleet.js';
import type { Personality } from './personality.js';

export const ROOT = '/redfish/v1';

/** The schema version of every resource type served, `Namespace.vX_Y_Z.Type`. */
export const TYPES = {
  ServiceRoot: '#ServiceRoot.v1_20_0.ServiceRoot',
  ComputerSystemCollection: '#ComputerSystemCollection.ComputerSystemCollection',
  ComputerSystem: '#ComputerSystem.v1_27_0.ComputerSystem',
  ProcessorCollection: '#ProcessorCollection.ProcessorCollection',
  Processor: '#Processor.v1_22_0.Processor',
  MemoryCollection: '#MemoryCollection.MemoryCollection',
  Memory: '#Memory.v1_23_0.Memory',
  StorageCollection: '#StorageCollection.StorageCollection',
  Storage: '#Storage.v1_21_0.Storage',
  Drive: '#Drive.v1_22_0.Drive',
  EthernetInterfaceCollection: '#EthernetInterfaceCollection.EthernetInterfaceCollection',
  EthernetInterface: '#EthernetInterface.v1_12_4.EthernetInterface',
  Bios: '#Bios.v1_2_3.Bios',
  SecureBoot: '#SecureBoot.v1_1_2.SecureBoot',
  ManagerCollection: '#ManagerCollection.ManagerCollection',
  Manager: '#Manager.v1_24_0.Manager',
  VirtualMediaCollection: '#VirtualMediaCollection.VirtualMediaCollection',
  VirtualMedia: '#VirtualMedia.v1_6_5.VirtualMedia',
  ChassisCollection: '#ChassisCollection.ChassisCollection',
  Chassis: '#Chassis.v1_28_0.Chassis',
  SessionService: '#SessionService.v1_2_0.SessionService',
  SessionCollection: '#SessionCollection.SessionCollection',
  Session: '#Session.v1_8_0.Session',
  AccountService: '#AccountService.v1_18_1.AccountService',
  ManagerAccountCollection: '#ManagerAccountCollection.ManagerAccountCollection',
  ManagerAccount: '#ManagerAccount.v1_14_1.ManagerAccount',
  TaskService: '#TaskService.v1_3_0.TaskService',
  TaskCollection: '#TaskCollection.TaskCollection',
  Task: '#Task.v1_7_4.Task',
  UpdateService: '#UpdateService.v1_17_0.UpdateService',
  SoftwareInventoryCollection: '#SoftwareInventoryCollection.SoftwareInventoryCollection',
  SoftwareInventory: '#SoftwareInventory.v1_13_0.SoftwareInventory',
} as const;
export type TypeName = keyof typeof TYPES;

/** Extra schema namespaces referenced by annotations and messages ($metadata must list them). */
export const ANNOTATION_TYPES = ['#Settings.v1_4_0.Settings', '#Message.v1_3_0.Message', '#Resource.v1_23_0.Resource'] as const;

type Json = Record<string, unknown>;
const ok = { State: 'Enabled', Health: 'OK' };
const link = (id: string) => ({ '@odata.id': id });

function head(type: TypeName, id: string): Json {
  const name = TYPES[type].slice(1).split('.').at(-1)!;
  return { '@odata.type': TYPES[type], '@odata.id': id, '@odata.context': `${ROOT}/$metadata#${name}.${name}` };
}

export function collection(type: TypeName, id: string, name: string, members: string[]): Json {
  return { ...head(type, id), Name: name, Members: members.map(link), 'Members@odata.count': members.length };
}

export const sysPath = (s: SystemState) => `${ROOT}/Systems/${s.id}`;
export const mgrPath = (s: SystemState) => `${ROOT}/Managers/${s.id}`;
export const chassisPath = (s: SystemState) => `${ROOT}/Chassis/${s.id}`;
export const taskPath = (id: string) => `${ROOT}/TaskService/Tasks/${id}`;
export const taskMonitorPath = (id: string) => `${ROOT}/TaskService/TaskMonitors/${id}`;
export const SESSIONS_PATH = `${ROOT}/SessionService/Sessions`;

export function serviceRoot(serviceUuid: string, p: Personality): Json {
  return {
    ...head('ServiceRoot', `${ROOT}/`),
    Id: 'RootService',
    Name: 'Ingot Lab Redfish Service',
    RedfishVersion: '1.11.0',
    UUID: serviceUuid,
    Product: 'Ingot Lab',
    Vendor: 'Ingot',
    ProtocolFeaturesSupported: {
      ExpandQuery: { ExpandAll: false, Levels: false, Links: false, NoLinks: false },
      SelectQuery: false,
      FilterQuery: false,
      OnlyMemberQuery: false,
      ExcerptQuery: false,
    },
    Systems: link(`${ROOT}/Systems`),
    Chassis: link(`${ROOT}/Chassis`),
    Managers: link(`${ROOT}/Managers`),
    ...(p.sessions ? { SessionService: link(`${ROOT}/SessionService`) } : {}),
    AccountService: link(`${ROOT}/AccountService`),
    // ServiceRoot names the task service link `Tasks` (clients such as Ironic's sushy read it by that name).
    Tasks: link(`${ROOT}/TaskService`),
    UpdateService: link(`${ROOT}/UpdateService`),
    Links: p.sessions ? { Sessions: link(SESSIONS_PATH) } : {},
  };
}

export function computerSystem(fleet: LabFleet, s: SystemState, p: Personality): Json {
  const hw = s.hardware;
  const cpus = hw.processors.filter((p) => p.type === 'CPU');
  const base = sysPath(s);
  return {
    ...head('ComputerSystem', base),
    Id: s.id,
    Name: `Lab system ${s.id}`,
    SystemType: 'Physical',
    Manufacturer: hw.manufacturer,
    Model: hw.model,
    SKU: hw.sku,
    SerialNumber: hw.serialNumber,
    UUID: s.uuid,
    AssetTag: s.assetTag,
    PowerState: fleet.powerState(s),
    BiosVersion: hw.biosVersion,
    Status: ok,
    Boot: {
      BootSourceOverrideEnabled: s.boot.enabled,
      'BootSourceOverrideEnabled@Redfish.AllowableValues': [...BOOT_OVERRIDE_ENABLED],
      BootSourceOverrideTarget: s.boot.target,
      'BootSourceOverrideTarget@Redfish.AllowableValues': [...BOOT_TARGETS],
      BootSourceOverrideMode: s.boot.mode,
      'BootSourceOverrideMode@Redfish.AllowableValues': [...BOOT_MODES],
    },
    ProcessorSummary: {
      Count: cpus.length,
      CoreCount: cpus.reduce((n, p) => n + p.cores, 0),
      LogicalProcessorCount: cpus.reduce((n, p) => n + p.threads, 0),
      Model: cpus[0]?.model ?? '',
      Status: ok,
    },
    MemorySummary: { TotalSystemMemoryGiB: hw.memory.reduce((n, m) => n + m.capacityMiB, 0) / 1024, Status: ok },
    Processors: link(`${base}/Processors`),
    Memory: link(`${base}/Memory`),
    Storage: link(`${base}/Storage`),
    EthernetInterfaces: link(`${base}/EthernetInterfaces`),
    ...(p.bios ? { Bios: link(`${base}/Bios`) } : {}),
    ...(hw.secureBootCapable ? { SecureBoot: link(`${base}/SecureBoot`) } : {}),
    Links: { Chassis: [link(chassisPath(s))], ManagedBy: [link(mgrPath(s))] },
    Actions: {
      '#ComputerSystem.Reset': {
        target: `${base}/Actions/ComputerSystem.Reset`,
        'ResetType@Redfish.AllowableValues': [...RESET_TYPES],
      },
    },
  };
}

export function processors(s: SystemState): Json {
  return collection('ProcessorCollection', `${sysPath(s)}/Processors`, 'Processors', s.hardware.processors.map((p) => `${sysPath(s)}/Processors/${p.id}`));
}

export function processor(s: SystemState, id: string): Json | undefined {
  const p = s.hardware.processors.find((x) => x.id === id);
  if (!p) return undefined;
  return {
    ...head('Processor', `${sysPath(s)}/Processors/${p.id}`),
    Id: p.id,
    Name: p.type === 'CPU' ? `Processor ${p.socket}` : `GPU ${p.socket}`,
    ProcessorType: p.type,
    ...(p.type === 'CPU' ? { ProcessorArchitecture: 'x86', InstructionSet: 'x86-64', TotalCores: p.cores, TotalThreads: p.threads } : {}),
    Manufacturer: p.manufacturer,
    Model: p.model,
    Socket: p.socket,
    MaxSpeedMHz: p.maxSpeedMHz,
    Status: ok,
  };
}

export function memories(s: SystemState): Json {
  return collection('MemoryCollection', `${sysPath(s)}/Memory`, 'Memory', s.hardware.memory.map((m) => `${sysPath(s)}/Memory/${m.id}`));
}

export function memory(s: SystemState, id: string): Json | undefined {
  const m = s.hardware.memory.find((x) => x.id === id);
  if (!m) return undefined;
  return {
    ...head('Memory', `${sysPath(s)}/Memory/${m.id}`),
    Id: m.id,
    Name: `Memory ${m.id}`,
    MemoryType: 'DRAM',
    MemoryDeviceType: m.deviceType,
    CapacityMiB: m.capacityMiB,
    OperatingSpeedMhz: m.speedMHz,
    Manufacturer: m.manufacturer,
    SerialNumber: m.serialNumber,
    Status: ok,
  };
}

export function storages(s: SystemState): Json {
  return collection('StorageCollection', `${sysPath(s)}/Storage`, 'Storage', [`${sysPath(s)}/Storage/1`]);
}

export function storage(s: SystemState): Json {
  const base = `${sysPath(s)}/Storage/1`;
  const protocols = [...new Set(s.hardware.drives.map((d) => driveProtocol(d.type)))];
  return {
    ...head('Storage', base),
    Id: '1',
    Name: 'Local storage',
    Status: ok,
    StorageControllers: [
      {
        '@odata.id': `${base}#/StorageControllers/0`,
        MemberId: '0',
        Name: 'Lab storage controller',
        Status: ok,
        SupportedDeviceProtocols: protocols,
      },
    ],
    Drives: s.hardware.drives.map((d) => link(`${base}/Drives/${d.id}`)),
    'Drives@odata.count': s.hardware.drives.length,
  };
}

function driveProtocol(type: string): string {
  return type === 'nvme' ? 'NVMe' : type === 'hdd' ? 'SAS' : type === 'virtio' ? 'PCIe' : 'SATA';
}

export function drive(s: SystemState, id: string): Json | undefined {
  const d = s.hardware.drives.find((x) => x.id === id);
  if (!d) return undefined;
  const rotational = d.type === 'sata' || d.type === 'hdd';
  return {
    ...head('Drive', `${sysPath(s)}/Storage/1/Drives/${d.id}`),
    Id: d.id,
    Name: `Drive ${d.index}`,
    CapacityBytes: d.sizeBytes,
    BlockSizeBytes: 512,
    MediaType: rotational ? 'HDD' : 'SSD',
    Protocol: driveProtocol(d.type),
    ...(rotational ? { RotationSpeedRPM: 7200 } : {}),
    Manufacturer: 'Ingot Lab',
    Model: d.model,
    SerialNumber: d.serialNumber,
    Identifiers: [{ DurableNameFormat: 'NAA', DurableName: d.wwn }],
    Status: ok,
  };
}

export function ethernetInterfaces(s: SystemState): Json {
  return collection('EthernetInterfaceCollection', `${sysPath(s)}/EthernetInterfaces`, 'Ethernet interfaces', s.hardware.nics.map((n) => `${sysPath(s)}/EthernetInterfaces/${n.id}`));
}

export function ethernetInterface(s: SystemState, id: string): Json | undefined {
  const n = s.hardware.nics.find((x) => x.id === id);
  if (!n) return undefined;
  return {
    ...head('EthernetInterface', `${sysPath(s)}/EthernetInterfaces/${n.id}`),
    Id: n.id,
    Name: `Ethernet interface ${n.id}`,
    MACAddress: n.mac,
    PermanentMACAddress: n.mac,
    SpeedMbps: n.speedMbps,
    FullDuplex: true,
    AutoNeg: true,
    LinkStatus: 'LinkUp',
    InterfaceEnabled: true,
    Status: ok,
  };
}

export function bios(s: SystemState): Json {
  const base = `${sysPath(s)}/Bios`;
  return {
    ...head('Bios', base),
    Id: 'BIOS',
    Name: 'BIOS Configuration Current Settings',
    AttributeRegistry: 'BiosAttributeRegistry.v1_0_0',
    Attributes: { ...s.bios.current },
    '@Redfish.Settings': {
      '@odata.type': '#Settings.v1_4_0.Settings',
      SettingsObject: link(`${base}/Settings`),
      SupportedApplyTimes: ['OnReset'],
    },
    Actions: { '#Bios.ResetBios': { target: `${base}/Actions/Bios.ResetBios` } },
  };
}

/** The settings object holds only what is pending: values that apply on the next reset. */
export function biosSettings(s: SystemState): Json {
  return {
    ...head('Bios', `${sysPath(s)}/Bios/Settings`),
    Id: 'Settings',
    Name: 'BIOS Configuration Pending Settings',
    AttributeRegistry: 'BiosAttributeRegistry.v1_0_0',
    Attributes: { ...s.bios.pending },
  };
}

export function biosSettingsReadOnly(): string[] {
  return Object.entries(BIOS_ATTRIBUTES)
    .filter(([, d]) => d.readOnly)
    .map(([k]) => k);
}

export function secureBoot(s: SystemState): Json {
  return {
    ...head('SecureBoot', `${sysPath(s)}/SecureBoot`),
    Id: 'SecureBoot',
    Name: 'UEFI Secure Boot',
    SecureBootEnable: s.secureBoot.enabled,
    SecureBootCurrentBoot: s.secureBoot.currentBoot ? 'Enabled' : 'Disabled',
    SecureBootMode: 'DeployedMode',
  };
}

export function manager(s: SystemState): Json {
  const base = mgrPath(s);
  return {
    ...head('Manager', base),
    Id: s.id,
    Name: `BMC of ${s.id}`,
    ManagerType: 'BMC',
    UUID: nameUuid(`bmc:${s.id}`),
    Model: 'Ingot Lab BMC',
    FirmwareVersion: s.hardware.bmcFirmwareVersion,
    PowerState: 'On',
    DateTime: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    DateTimeLocalOffset: '+00:00',
    Status: ok,
    VirtualMedia: link(`${base}/VirtualMedia`),
    Links: { ManagerForServers: [link(sysPath(s))], ManagerForChassis: [link(chassisPath(s))] },
    Actions: {
      '#Manager.Reset': { target: `${base}/Actions/Manager.Reset`, 'ResetType@Redfish.AllowableValues': ['GracefulRestart', 'ForceRestart'] },
    },
  };
}

export function virtualMediaCollection(s: SystemState): Json {
  return collection('VirtualMediaCollection', `${mgrPath(s)}/VirtualMedia`, 'Virtual media', [`${mgrPath(s)}/VirtualMedia/Cd`]);
}

export function virtualMedia(s: SystemState, p: Personality): Json {
  const base = `${mgrPath(s)}/VirtualMedia/Cd`;
  const image = s.media.inserted ? s.media.image : null;
  const protocol = image ? (image.startsWith('https:') ? 'HTTPS' : 'HTTP') : null;
  return {
    ...head('VirtualMedia', base),
    Id: 'Cd',
    Name: 'Virtual CD',
    MediaTypes: ['CD', 'DVD'],
    Image: image,
    ImageName: image ? (decodeURIComponent(new URL(image).pathname.split('/').pop() ?? '') || null) : null,
    Inserted: s.media.inserted,
    WriteProtected: s.media.writeProtected,
    ConnectedVia: image ? 'URI' : 'NotConnected',
    TransferMethod: 'Stream',
    TransferProtocolType: protocol,
    ...(p.mediaActions
      ? {
          Actions: {
            '#VirtualMedia.InsertMedia': { target: `${base}/Actions/VirtualMedia.InsertMedia` },
            '#VirtualMedia.EjectMedia': { target: `${base}/Actions/VirtualMedia.EjectMedia` },
          },
        }
      : {}),
  };
}

export function chassis(fleet: LabFleet, s: SystemState): Json {
  const power = fleet.powerState(s);
  return {
    ...head('Chassis', chassisPath(s)),
    Id: s.id,
    Name: `Chassis of ${s.id}`,
    ChassisType: 'RackMount',
    Manufacturer: s.hardware.manufacturer,
    Model: s.hardware.model,
    SerialNumber: s.hardware.serialNumber,
    PowerState: power === 'On' || power === 'PoweringOff' ? 'On' : power === 'Off' ? 'Off' : power,
    Status: ok,
    Links: { ComputerSystems: [link(sysPath(s))], ManagedBy: [link(mgrPath(s))] },
  };
}

export function sessionService(timeoutSeconds: number): Json {
  return {
    ...head('SessionService', `${ROOT}/SessionService`),
    Id: 'SessionService',
    Name: 'Session Service',
    ServiceEnabled: true,
    SessionTimeout: timeoutSeconds,
    Status: ok,
    Sessions: link(SESSIONS_PATH),
  };
}

export function session(sess: { id: string; username: string; createdAt: string }): Json {
  return {
    ...head('Session', `${SESSIONS_PATH}/${sess.id}`),
    Id: sess.id,
    Name: 'User Session',
    UserName: sess.username,
    Password: null,
    SessionType: 'Redfish',
    CreatedTime: sess.createdAt,
  };
}

export function accountService(): Json {
  return {
    ...head('AccountService', `${ROOT}/AccountService`),
    Id: 'AccountService',
    Name: 'Account Service',
    ServiceEnabled: true,
    MinPasswordLength: 8,
    MaxPasswordLength: 64,
    Status: ok,
    Accounts: link(`${ROOT}/AccountService/Accounts`),
  };
}

export function account(s: SystemState): Json {
  return {
    ...head('ManagerAccount', `${ROOT}/AccountService/Accounts/1`),
    Id: '1',
    Name: 'User Account',
    UserName: s.credentials.username,
    Password: null,
    RoleId: 'Administrator',
    AccountTypes: ['Redfish'],
    Enabled: true,
    Locked: false,
  };
}

export function taskService(): Json {
  return {
    ...head('TaskService', `${ROOT}/TaskService`),
    Id: 'TaskService',
    Name: 'Task Service',
    ServiceEnabled: true,
    CompletedTaskOverWritePolicy: 'Oldest',
    LifeCycleEventOnTaskStateChange: false,
    DateTime: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    Status: ok,
    Tasks: link(`${ROOT}/TaskService/Tasks`),
  };
}

export function task(t: LabTask, now: number): Json {
  const span = Math.max(1, t.endsAtMs - t.startedAtMs);
  const percent = t.state === 'Running' ? Math.min(99, Math.max(0, Math.floor(((now - t.startedAtMs) / span) * 100))) : 100;
  return {
    ...head('Task', taskPath(t.id)),
    Id: t.id,
    Name: t.name,
    TaskState: t.state,
    TaskStatus: t.state === 'Cancelled' ? 'Warning' : 'OK',
    StartTime: t.startTime,
    ...(t.endTime ? { EndTime: t.endTime } : {}),
    PercentComplete: percent,
    TaskMonitor: taskMonitorPath(t.id),
    Messages: [],
  };
}

export function updateService(): Json {
  return {
    ...head('UpdateService', `${ROOT}/UpdateService`),
    Id: 'UpdateService',
    Name: 'Update Service',
    ServiceEnabled: true,
    Status: ok,
    FirmwareInventory: link(`${ROOT}/UpdateService/FirmwareInventory`),
    // Clients (Ironic's sushy) require an Actions object. The lab has no firmware to flash, so
    // SimpleUpdate is advertised and answered with ActionNotSupported.
    Actions: {
      '#UpdateService.SimpleUpdate': {
        target: `${ROOT}/UpdateService/Actions/UpdateService.SimpleUpdate`,
        'TransferProtocol@Redfish.AllowableValues': ['HTTP', 'HTTPS'],
      },
    },
  };
}

export const FIRMWARE_IDS = ['BIOS', 'BMC'] as const;

export function firmware(s: SystemState, id: string): Json | undefined {
  if (id !== 'BIOS' && id !== 'BMC') return undefined;
  return {
    ...head('SoftwareInventory', `${ROOT}/UpdateService/FirmwareInventory/${id}`),
    Id: id,
    Name: id === 'BIOS' ? 'System BIOS' : 'BMC Firmware',
    Version: id === 'BIOS' ? s.hardware.biosVersion : s.hardware.bmcFirmwareVersion,
    SoftwareId: id === 'BIOS' ? 'ingot-lab-bios' : 'ingot-lab-bmc',
    Manufacturer: 'Ingot Lab',
    Updateable: false,
    Status: ok,
    RelatedItem: [link(id === 'BIOS' ? sysPath(s) : mgrPath(s))],
  };
}

/** The OData service document ($metadata's companion, DSP0266 "OData service document"). */
export function odataServiceDocument(p: Personality): Json {
  const singletons: Array<[string, string]> = [
    ['Service', `${ROOT}/`],
    ['Systems', `${ROOT}/Systems`],
    ['Chassis', `${ROOT}/Chassis`],
    ['Managers', `${ROOT}/Managers`],
    ['SessionService', `${ROOT}/SessionService`],
    ['Sessions', SESSIONS_PATH],
    ['AccountService', `${ROOT}/AccountService`],
    ['TaskService', `${ROOT}/TaskService`],
    ['UpdateService', `${ROOT}/UpdateService`],
  ];
  return {
    '@odata.context': `${ROOT}/$metadata`,
    value: singletons.filter(([name]) => p.sessions || !name.startsWith('Session')).map(([name, url]) => ({ name, kind: 'Singleton', url })),
  };
}

/** CSDL metadata document: a Reference per schema used, and the Service entity container. */
export function metadataXml(): string {
  const namespaces = new Map<string, Set<string>>();
  for (const t of [...Object.values(TYPES), ...ANNOTATION_TYPES]) {
    const parts = t.slice(1).split('.');
    const ns = parts[0]!;
    const set = namespaces.get(ns) ?? new Set<string>();
    set.add(ns);
    if (parts.length === 3) set.add(`${parts[0]}.${parts[1]}`);
    namespaces.set(ns, set);
  }
  for (const extra of ['RedfishExtensions.v1_0_0']) namespaces.set(extra.split('.')[0]!, new Set([extra]));
  const refs = [...namespaces.entries()]
    .map(([ns, includes]) => {
      const file = ns === 'RedfishExtensions' ? 'RedfishExtensions_v1.xml' : `${ns}_v1.xml`;
      const inc = [...includes].map((i) => (ns === 'RedfishExtensions' ? `    <edmx:Include Namespace="${i}" Alias="Redfish"/>` : `    <edmx:Include Namespace="${i}"/>`)).join('\n');
      return `  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/${file}">\n${inc}\n  </edmx:Reference>`;
    })
    .join('\n');
  return `<?xml version="1.0" encoding="UTF-8"?>
<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">
${refs}
  <edmx:DataServices>
    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="Service">
      <EntityContainer Name="Service" Extends="${TYPES.ServiceRoot.slice(1).split('.').slice(0, 2).join('.')}.ServiceContainer"/>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>
`;
}
