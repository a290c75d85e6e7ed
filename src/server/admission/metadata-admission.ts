// Checks on metadata that the schemas cannot express: TypeBox Records validate the values of
// label/annotation maps by key pattern but let keys that match no pattern through, so keys are
// checked here.
import { DNS_LABEL, LABEL_KEY_PATTERN } from '../../model/envelope.js';
import type { FieldProblem } from '../../model/errors.js';

const LABEL_KEY = new RegExp(LABEL_KEY_PATTERN);
const KEY_RULE = "must be a label key: an optional DNS-subdomain prefix and '/', then 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit";

function mapKeyProblems(map: Record<string, unknown> | undefined, field: string): FieldProblem[] {
  const problems: FieldProblem[] = [];
  for (const key of Object.keys(map ?? {})) {
    if (!LABEL_KEY.test(key) || key.length > 317) problems.push({ field: `${field}[${JSON.stringify(key)}]`, message: `key ${KEY_RULE}` });
  }
  return problems;
}

/** Problems with label and annotation keys; for platform-scoped kinds, a project is refused too. */
export function metadataProblems(
  metadata: { project?: string; labels?: Record<string, unknown>; annotations?: Record<string, unknown> },
  scope: { kind: string; platformOnly: boolean },
): FieldProblem[] {
  const problems = [...mapKeyProblems(metadata.labels, 'metadata.labels'), ...mapKeyProblems(metadata.annotations, 'metadata.annotations')];
  if (scope.platformOnly && metadata.project !== undefined) {
    problems.push({ field: 'metadata.project', message: `${scope.kind} is platform-scoped; remove metadata.project` });
  }
  return problems;
}

export function isDnsLabel(value: string): boolean {
  return DNS_LABEL.test(value);
}
