// The routes every spec-and-status resource kind shares (OSImage, NodeType, Project, IPPool,
// Claim, ClaimSet): list (and watch), create, read, create-or-replace, merge-patch and delete,
// with one action per verb (`<prefix>:list|get|create|update|delete`). Kind-specific rules
// (references, quotas, immutable fields, projections for tenants) plug in as hooks, so the
// request handling, optimistic concurrency, reserved-label guard and error messages are the
// same for every kind.
//
// Scope: platform kinds live at /api/v1/<plural>[/:name]. Project kinds live at
// /api/v1/projects/:project/<plural>[/:name]; their platform-wide list /api/v1/<plural> is for
// platform roles (project roles are dropped there, project-scope.ts). A project route answers
// 404 for a project that does not exist, the same for every caller.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type, type TSchema } from 'typebox';
import { API_VERSION, InputMetadata, Name } from '../../model/envelope.js';
import { conflict, IngotError, notFound, validationError } from '../../model/errors.js';
import { parseLabelSelector } from '../../model/label-selector.js';
import type { Store, StoredResource } from '../../store/store.js';
import { metadataProblems } from '../admission/metadata-admission.js';
import { checkReservedMetadata } from '../admission/reserved-metadata.js';
import { actorOf } from '../auth/access-control.js';
import { authorize, type Action, type Identity } from '../auth/policy.js';
import type { ApiContext } from '../api-context.js';
import { parseResourceVersion, toEnvelope, toList } from '../envelope.js';
import { applyMergePatch } from '../merge-patch.js';
import { documented, errorResponses, PageQuery } from '../schemas.js';
import { humanizeSchemaErrors, type SchemaError } from '../validation-messages.js';
import { streamWatch } from '../watch-stream.js';

export type ResourcePrefix = 'osimage' | 'nodetype' | 'project' | 'claim' | 'claimset' | 'ippool';

/** What a write asks to store, after schema validation, for the kind's admission hook. */
export interface AdmissionRequest<Spec> {
  operation: 'create' | 'update';
  identity: Identity;
  /** '' for platform kinds. */
  project: string;
  name: string;
  spec: Spec;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  existing?: StoredResource;
}

export interface AdmissionResult<Spec> {
  /** The spec to store (e.g. with inline user data sealed away); default the request's. */
  spec?: Spec;
  /** Allowed, but worth telling the client (soft quotas): a `Warning` header and an audit event. */
  warnings?: string[];
  /** Called with the stored row inside the same transaction (e.g. to seal values under its uid). */
  afterStore?: (tx: Store, stored: StoredResource) => Promise<void>;
}

export type Envelope = Record<string, unknown>;

export interface ResourceKindRoutes<Spec> {
  kind: string;
  /** URL segment, e.g. `osimages`. */
  plural: string;
  prefix: ResourcePrefix;
  scope: 'platform' | 'project';
  specSchema: TSchema;
  /** Schema of metadata.name and the :name parameter; default a DNS label. */
  nameSchema?: TSchema;
  /** What the kind is, for OpenAPI summaries ("an OS image"). */
  noun: string;
  initialStatus(spec: Spec): Record<string, unknown>;
  /** Status after an update changed the spec; default: unchanged. */
  statusAfterUpdate?(existing: StoredResource, spec: Spec): Record<string, unknown>;
  /** Cross-resource checks, inside the write's transaction. Throw IngotError to refuse. */
  admit?(tx: Store, request: AdmissionRequest<Spec>): Promise<AdmissionResult<Spec> | void>;
  /** 'remove': the row goes at once. 'finalize': deletionTimestamp is set and a controller removes the row. */
  deletion: 'remove' | 'finalize';
  /** Refuse a delete (409 with what still uses it); inside the delete's transaction. */
  checkDelete?(tx: Store, existing: StoredResource): Promise<void>;
  /** What the caller sees of a stored row (tenants get less); default the whole envelope. */
  view?(row: StoredResource, identity: Identity): Envelope;
  /** Filters list answers by caller (tenants see only node types their project may claim). */
  visible?(row: StoredResource, identity: Identity, scope: { project: string; tx: Store }): Promise<boolean> | boolean;
  /** Extra project-scoped read routes for a platform kind (node types a project may claim). */
  projectView?: boolean;
  /**
   * URL parameter naming the item; default `name`. Projects use `project`, so that
   * /api/v1/projects/:project is a route of that project (its members may read it).
   */
  itemParam?: 'name' | 'project';
}

const SelectorQuery = {
  ...PageQuery,
  labelSelector: Type.Optional(Type.String({ maxLength: 4096, description: 'e.g. team=infra,!deprecated' })),
  watch: Type.Optional(Type.Boolean({ description: 'stream changes as server-sent events instead of listing' })),
  since: Type.Optional(Type.String({ pattern: '^[0-9]{1,18}$', description: 'with watch: resume after this change id' })),
};

function mapOrEmpty(value: unknown): Record<string, string> {
  return value !== null && typeof value === 'object' ? (value as Record<string, string>) : {};
}

export function resourceRoutes<Spec>(ctx: ApiContext, def: ResourceKindRoutes<Spec>): FastifyPluginAsyncTypebox {
  const { store } = ctx;
  const { kind, plural, prefix } = def;
  const nameSchema = def.nameSchema ?? Name;
  const action = (verb: 'list' | 'get' | 'create' | 'update' | 'delete'): Action => `${prefix}:${verb}` as Action;
  const metadataSchema = Type.Object({ ...InputMetadata.properties, name: nameSchema }, { additionalProperties: false });
  const Input = Type.Object(
    {
      apiVersion: Type.Optional(Type.Literal(API_VERSION)),
      kind: Type.Optional(Type.Literal(kind)),
      metadata: metadataSchema,
      spec: def.specSchema,
      status: Type.Optional(Type.Unknown({ description: 'ignored: status is owned by the server' })),
    },
    { additionalProperties: false },
  );
  const Patch = Type.Object(
    {
      apiVersion: Type.Optional(Type.Literal(API_VERSION)),
      kind: Type.Optional(Type.Literal(kind)),
      metadata: Type.Optional(
        Type.Object(
          {
            name: Type.Optional(nameSchema),
            project: Type.Optional(Name),
            labels: Type.Optional(Type.Union([Type.Record(Type.String(), Type.Union([Type.String({ maxLength: 63 }), Type.Null()])), Type.Null()])),
            annotations: Type.Optional(Type.Union([Type.Record(Type.String(), Type.Union([Type.String({ maxLength: 4096 }), Type.Null()])), Type.Null()])),
            resourceVersion: Type.Optional(Type.String({ pattern: '^[0-9]{1,18}$' })),
          },
          { additionalProperties: false },
        ),
      ),
      spec: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'merged into the current spec; null deletes a field' })),
      status: Type.Optional(Type.Unknown({ description: 'ignored' })),
    },
    { additionalProperties: false },
  );
  const Resource = Type.Object({ apiVersion: Type.Literal(API_VERSION), kind: Type.Literal(kind), metadata: Type.Unknown(), spec: Type.Unknown(), status: Type.Unknown() });
  const List = Type.Object({ apiVersion: Type.Literal(API_VERSION), kind: Type.Literal(`${kind}List`), items: Type.Array(Resource), metadata: Type.Object({ continue: Type.Optional(Type.String()) }) });
  const itemParam = def.itemParam ?? 'name';
  const ItemParams =
    def.scope === 'project'
      ? Type.Object({ project: Name, name: nameSchema }, { additionalProperties: false })
      : Type.Object({ [itemParam]: nameSchema }, { additionalProperties: false });
  const itemName = (request: FastifyRequest): string => (request.params as Record<string, string>)[itemParam]!;
  const CollectionParams = Type.Object({ project: Name }, { additionalProperties: false });
  const base = def.scope === 'project' ? `/api/v1/projects/:project/${plural}` : `/api/v1/${plural}`;
  const tags = [plural];

  const view = (row: StoredResource, identity: Identity): Envelope => (def.view ? def.view(row, identity) : (toEnvelope(row) as unknown as Envelope));
  const projectOf = (request: FastifyRequest): string => {
    const p = (request.params as { project?: string }).project;
    return def.scope === 'project' && typeof p === 'string' ? p : '';
  };

  /** Project routes need the project to exist; the answer is the same whoever asks. */
  async function requireProject(tx: Store, project: string): Promise<void> {
    if (project === '') return;
    if (!(await tx.get({ kind: 'Project', project: '', name: project }))) {
      throw new IngotError('INGOT_ERR_NOT_FOUND', `Project "${project}" does not exist (or you are not a member); check the name with \`ingot project list\` or ask a platform admin`);
    }
  }

  function checkInputScope(input: { metadata: { name: string; project?: string } }, project: string, urlName?: string): void {
    const problems = metadataProblems(input.metadata as never, { kind, platformOnly: def.scope === 'platform' });
    if (def.scope === 'project' && input.metadata.project !== undefined && input.metadata.project !== project) {
      problems.push({ field: 'metadata.project', message: `is "${input.metadata.project}" but the URL names project "${project}"; they must be equal (or leave metadata.project out)` });
    }
    if (urlName !== undefined && input.metadata.name !== urlName) {
      problems.push({ field: 'metadata.name', message: `is "${input.metadata.name}" but the URL names "${urlName}"; they must be equal` });
    }
    if (problems.length > 0) throw validationError(problems);
  }

  async function warn(request: FastifyRequest, reply: FastifyReply, warnings: string[] | undefined, target: string): Promise<void> {
    if (!warnings || warnings.length === 0) return;
    // RFC 7234 §5.5 warn-code 299 ("miscellaneous persistent warning"), as Kubernetes sends.
    void reply.header('warning', warnings.map((w) => `299 ingot "${w.replace(/["\\]/g, "'")}"`).join(', '));
    const identity = request.identity!;
    await ctx.audit?.record({
      actor: actorOf(identity),
      roles: identity.roles,
      project: identity.project,
      sourceAddress: request.ip,
      requestId: request.id,
      action: 'quota:soft-exceeded',
      target: { kind, project: projectOf(request), name: target },
      outcome: 'succeeded',
      reason: warnings.join('; ').slice(0, 500),
    });
  }

  async function store1(
    tx: Store,
    request: FastifyRequest,
    input: { metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> }; spec: Spec },
    existing: StoredResource | undefined,
  ): Promise<{ row: StoredResource; warnings?: string[] }> {
    const identity = request.identity!;
    const project = projectOf(request);
    const labels = input.metadata.labels ?? {};
    const annotations = input.metadata.annotations ?? {};
    checkReservedMetadata(identity, existing ?? { labels: {}, annotations: {} }, { labels, annotations });
    const admitted =
      (await def.admit?.(tx, {
        operation: existing ? 'update' : 'create',
        identity,
        project,
        name: input.metadata.name,
        spec: input.spec,
        labels,
        annotations,
        ...(existing ? { existing } : {}),
      })) ?? {};
    const spec = (admitted.spec ?? input.spec) as Record<string, unknown>;
    let row: StoredResource;
    if (existing) {
      row = await tx.replace({
        ...existing,
        labels,
        annotations,
        spec,
        status: def.statusAfterUpdate ? def.statusAfterUpdate(existing, spec as Spec) : existing.status,
      });
    } else {
      row = await tx.create({ kind, project, name: input.metadata.name, labels, annotations, spec, status: def.initialStatus(spec as Spec) });
    }
    await admitted.afterStore?.(tx, row);
    return { row, ...(admitted.warnings ? { warnings: admitted.warnings } : {}) };
  }

  function checkWritable(existing: StoredResource, expected: number | undefined): void {
    if (expected !== undefined && expected !== existing.resourceVersion) throw conflict(kind, existing.name, String(expected), String(existing.resourceVersion));
    if (existing.deletionTimestamp) {
      throw new IngotError('INGOT_ERR_CONFLICT', `${kind} "${existing.name}" is being deleted (since ${existing.deletionTimestamp}); wait until it is gone, then create it again`);
    }
  }

  async function list(request: FastifyRequest, reply: FastifyReply, project: string | undefined): Promise<unknown> {
    const q = request.query as { limit?: number; continue?: string; labelSelector?: string; watch?: boolean; since?: string };
    const selector = q.labelSelector ? parseLabelSelector(q.labelSelector) : [];
    const identity = request.identity!;
    const scopeProject = projectOf(request) || ((request.params as { project?: string }).project ?? '');
    if (q.watch) {
      if ((def.visible && scopeProject !== '') || def.view || project === undefined) {
        throw validationError([{ field: 'watch', message: `watching ${plural} is not offered on this route; list instead` }]);
      }
      const lastEventId = request.headers['last-event-id'];
      const resume = typeof lastEventId === 'string' && lastEventId !== '' ? lastEventId : q.since;
      if (resume !== undefined && !/^[0-9]{1,18}$/.test(resume)) {
        throw validationError([{ field: 'Last-Event-ID', message: 'must be the id of an event this server sent (a whole number)' }]);
      }
      await streamWatch(request, reply, ctx.watches, {
        store,
        kind,
        project,
        selector,
        ...(resume !== undefined ? { since: Number(resume) } : {}),
        heartbeatMs: ctx.watchHeartbeatMs,
        pollMs: ctx.watchPollMs,
      });
      return reply;
    }
    const page = await store.list({
      kind,
      ...(project !== undefined ? { project } : {}),
      labelSelector: selector,
      ...(q.limit !== undefined ? { limit: q.limit } : {}),
      ...(q.continue ? { continue: q.continue } : {}),
    });
    const items: Envelope[] = [];
    for (const row of page.items) {
      if (def.visible && !(await def.visible(row, identity, { project: scopeProject, tx: store }))) continue;
      items.push(view(row, identity));
    }
    return toList(kind, items, page.continue);
  }

  return async function resourceRoutesPlugin(app) {
    const listSchema = (summary: string, params?: TSchema) => ({
      summary,
      tags,
      ...(params ? { params } : {}),
      querystring: Type.Object(SelectorQuery, { additionalProperties: false }),
      response: documented({ 200: List, ...errorResponses(404) }),
    });

    app.route({
      method: 'GET',
      url: base,
      config: { action: action('list') },
      schema: listSchema(`List ${plural}${def.scope === 'project' ? ' of a project' : ''}`, def.scope === 'project' ? CollectionParams : undefined),
      handler: async (request, reply) => {
        const project = def.scope === 'project' ? projectOf(request) : '';
        await requireProject(store, project);
        return list(request, reply, project);
      },
    });

    if (def.scope === 'project') {
      app.route({
        method: 'GET',
        url: `/api/v1/${plural}`,
        config: { action: action('list') },
        schema: listSchema(`List ${plural} of every project (platform roles)`),
        handler: async (request, reply) => list(request, reply, undefined),
      });
    }

    if (def.projectView) {
      // A platform kind as a project sees it (e.g. the node types the project may claim).
      app.route({
        method: 'GET',
        url: `/api/v1/projects/:project/${plural}`,
        config: { action: action('list') },
        schema: listSchema(`List the ${plural} a project may use`, CollectionParams),
        handler: async (request, reply) => {
          await requireProject(store, (request.params as { project: string }).project);
          return list(request, reply, '');
        },
      });
      app.route({
        method: 'GET',
        url: `/api/v1/projects/:project/${plural}/:name`,
        config: { action: action('get') },
        schema: { summary: `Read ${def.noun} a project may use`, tags, params: Type.Object({ project: Name, name: nameSchema }, { additionalProperties: false }), response: documented({ 200: Resource, ...errorResponses(404) }) },
        handler: async (request) => {
          const { project, name } = request.params as { project: string; name: string };
          await requireProject(store, project);
          const row = await store.get({ kind, project: '', name });
          if (!row || (def.visible && !(await def.visible(row, request.identity!, { project, tx: store })))) throw notFound(kind, name);
          return view(row, request.identity!);
        },
      });
    }

    app.route({
      method: 'POST',
      url: base,
      config: { action: action('create') },
      schema: {
        summary: `Create ${def.noun}`,
        tags,
        ...(def.scope === 'project' ? { params: CollectionParams } : {}),
        body: Input,
        response: documented({ 201: Resource, ...errorResponses(404, 409, 413, 415, 422) }),
      },
      handler: async (request, reply) => {
        const project = projectOf(request);
        const body = request.body as { metadata: { name: string; project?: string }; spec: Spec };
        checkInputScope(body, project);
        const result = await store.transaction(async (tx) => {
          await requireProject(tx, project);
          return store1(tx, request, body, undefined);
        });
        await warn(request, reply, result.warnings, result.row.name);
        const location = def.scope === 'project' ? `/api/v1/projects/${project}/${plural}/${result.row.name}` : `/api/v1/${plural}/${result.row.name}`;
        return reply.code(201).header('location', location).send(view(result.row, request.identity!));
      },
    });

    app.route({
      method: 'GET',
      url: `${base}/:${itemParam}`,
      config: { action: action('get') },
      schema: { summary: `Read ${def.noun}`, tags, params: ItemParams, response: documented({ 200: Resource, ...errorResponses(404) }) },
      handler: async (request) => {
        const project = projectOf(request);
        const name = itemName(request);
        await requireProject(store, project);
        const row = await store.get({ kind, project, name });
        if (!row) throw notFound(kind, name);
        return view(row, request.identity!);
      },
    });

    // Create-or-replace, for `ingot apply`: when the resource does not exist yet, the create
    // action is checked as well, so a role that may update but not create cannot create via PUT.
    app.route({
      method: 'PUT',
      url: `${base}/:${itemParam}`,
      config: { action: action('update') },
      schema: {
        summary: `Create or replace ${def.noun} (labels, annotations and spec; status is kept)`,
        tags,
        params: ItemParams,
        body: Input,
        response: documented({ 200: Resource, 201: Resource, ...errorResponses(404, 409, 413, 415, 422) }),
      },
      handler: async (request, reply) => {
        const project = projectOf(request);
        const name = itemName(request);
        const body = request.body as { metadata: { name: string; project?: string; resourceVersion?: string }; spec: Spec };
        checkInputScope(body, project, name);
        const expected = parseResourceVersion(body.metadata.resourceVersion);
        const result = await store.transaction(async (tx) => {
          await requireProject(tx, project);
          const existing = await tx.get({ kind, project, name });
          if (!existing) {
            authorize(ctx.policy, request.identity!, action('create'));
            if (expected !== undefined) {
              throw new IngotError('INGOT_ERR_CONFLICT', `${kind} "${name}" does not exist, but metadata.resourceVersion ${expected} was given; remove metadata.resourceVersion to create it`);
            }
            return { created: true, ...(await store1(tx, request, body, undefined)) };
          }
          checkWritable(existing, expected);
          return { created: false, ...(await store1(tx, request, body, existing)) };
        });
        await warn(request, reply, result.warnings, name);
        return reply.code(result.created ? 201 : 200).send(view(result.row, request.identity!));
      },
    });

    app.route({
      method: 'PATCH',
      url: `${base}/:${itemParam}`,
      config: { action: action('update') },
      schema: {
        summary: `Change ${def.noun} with a JSON merge patch (RFC 7386) on metadata.labels, metadata.annotations and spec`,
        tags,
        params: ItemParams,
        body: Patch,
        response: documented({ 200: Resource, ...errorResponses(404, 409, 413, 415, 422) }),
      },
      handler: async (request, reply) => {
        const project = projectOf(request);
        const name = itemName(request);
        const patch = request.body as { metadata?: { name?: string; project?: string; labels?: unknown; annotations?: unknown; resourceVersion?: string }; spec?: Record<string, unknown> };
        if (patch.metadata?.name !== undefined && patch.metadata.name !== name) {
          throw validationError([{ field: 'metadata.name', message: `is "${patch.metadata.name}" but the URL names "${name}"; ${kind} objects cannot be renamed` }]);
        }
        const expected = parseResourceVersion(patch.metadata?.resourceVersion);
        const validate = request.compileValidationSchema(Input, 'body');
        const result = await store.transaction(async (tx) => {
          await requireProject(tx, project);
          const existing = await tx.get({ kind, project, name });
          if (!existing) throw notFound(kind, name);
          checkWritable(existing, expected);
          const next = {
            metadata: {
              name,
              labels: mapOrEmpty(patch.metadata && 'labels' in patch.metadata ? applyMergePatch(existing.labels, patch.metadata.labels) : existing.labels),
              annotations: mapOrEmpty(patch.metadata && 'annotations' in patch.metadata ? applyMergePatch(existing.annotations, patch.metadata.annotations) : existing.annotations),
            },
            spec: patch.spec !== undefined ? applyMergePatch(existing.spec, patch.spec) : existing.spec,
          };
          if (!validate(next)) throw validationError(humanizeSchemaErrors((validate.errors ?? []) as SchemaError[]));
          return store1(tx, request, next as { metadata: typeof next.metadata; spec: Spec }, existing);
        });
        await warn(request, reply, result.warnings, name);
        return view(result.row, request.identity!);
      },
    });

    app.route({
      method: 'DELETE',
      url: `${base}/:${itemParam}`,
      config: { action: action('delete') },
      schema: {
        summary: def.deletion === 'finalize' ? `Ask for ${def.noun} to be released and removed (202; the controller finishes it)` : `Delete ${def.noun}`,
        tags,
        params: ItemParams,
        response: documented({ 200: Resource, 202: Resource, ...errorResponses(404, 409) }),
      },
      handler: async (request, reply) => {
        const project = projectOf(request);
        const name = itemName(request);
        const row = await unconditionally(() =>
          store.transaction(async (tx) => {
            await requireProject(tx, project);
            const existing = await tx.get({ kind, project, name });
            if (!existing) throw notFound(kind, name);
            if (existing.deletionTimestamp) return existing;
            await def.checkDelete?.(tx, existing);
            if (def.deletion === 'finalize') return tx.replace({ ...existing, deletionTimestamp: new Date().toISOString() });
            await tx.remove({ kind, project, name }, existing.resourceVersion);
            return existing;
          }),
        );
        return reply.code(def.deletion === 'finalize' ? 202 : 200).send(view(row, request.identity!));
      },
    });
  };
}

/**
 * Runs a write the caller made without a precondition again when a controller changed the
 * row between our read and our write (another process on PostgreSQL, say): the user asked for
 * no particular version, so that race is not theirs to resolve. Bounded: a row that changes
 * on every attempt still answers 409.
 */
async function unconditionally<T>(write: () => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await write();
    } catch (error) {
      const changedMeanwhile = error instanceof IngotError && error.code === 'INGOT_ERR_CONFLICT' && /has resourceVersion \d+, not \d+/.test(error.message);
      if (!changedMeanwhile || attempt >= attempts) throw error;
    }
  }
}

/** Registers a kind's routes on a server (the plugin form keeps route prefixes out of the kinds). */
export function registerResourceRoutes<Spec>(app: FastifyInstance, ctx: ApiContext, def: ResourceKindRoutes<Spec>): void {
  void app.register(resourceRoutes(ctx, def));
}
