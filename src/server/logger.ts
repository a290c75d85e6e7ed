// The server's logger: pino with redaction of everything that can carry a credential or a
// secret value, wherever it appears in a logged object (headers, bodies, errors' context).
import { pino, type Logger, type LevelWithSilent } from 'pino';

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'authorization',
  'password',
  'token',
  'stringData',
  'userData',
  '*.authorization',
  '*.password',
  '*.token',
  '*.stringData',
  '*.userData',
  '*.*.password',
  '*.*.token',
  '*.*.stringData',
  '*.*.userData',
  'credentials.password',
  '*.credentials.password',
];

export function createLogger(options: { level?: LevelWithSilent; destination?: NodeJS.WritableStream } = {}): Logger {
  const opts = { level: options.level ?? 'info', redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
  return options.destination ? pino(opts, options.destination as never) : pino(opts);
}
