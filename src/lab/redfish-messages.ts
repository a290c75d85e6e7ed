// Redfish error and message payloads (DSP0266 "Error responses"; the Base message registry).
// An error response is {"error": {code, message, "@Message.ExtendedInfo": [Message…]}}, where
// `code` is a MessageId and each Message names what went wrong and how to resolve it.

/** Base registry version the lab's MessageIds refer to: Base.<major>.<minor>.<Key>. */
export const BASE_REGISTRY = 'Base.1.11';

export interface RedfishMessage {
  '@odata.type': string;
  MessageId: string;
  Message: string;
  MessageArgs: string[];
  Severity: 'OK' | 'Warning' | 'Critical';
  MessageSeverity: 'OK' | 'Warning' | 'Critical';
  Resolution: string;
  RelatedProperties?: string[];
}

export function message(
  key: string,
  text: string,
  opts: { args?: string[]; severity?: 'OK' | 'Warning' | 'Critical'; resolution?: string; related?: string[] } = {},
): RedfishMessage {
  const severity = opts.severity ?? 'Warning';
  return {
    '@odata.type': '#Message.v1_3_0.Message',
    MessageId: `${BASE_REGISTRY}.${key}`,
    Message: text,
    MessageArgs: opts.args ?? [],
    Severity: severity,
    MessageSeverity: severity,
    Resolution: opts.resolution ?? 'None.',
    ...(opts.related ? { RelatedProperties: opts.related } : {}),
  };
}

/** An error the service answers with: HTTP status, extra headers, Redfish error body. */
export class RedfishError extends Error {
  readonly status: number;
  readonly messages: RedfishMessage[];
  readonly headers: Record<string, string>;

  constructor(status: number, messages: RedfishMessage[], headers: Record<string, string> = {}) {
    super(messages[0]?.Message ?? 'error');
    this.status = status;
    this.messages = messages;
    this.headers = headers;
  }

  body(): unknown {
    // DSP0266: `code` is a MessageId for the error as a whole; with several messages the
    // general error is used and the detail is in @Message.ExtendedInfo.
    const single = this.messages.length === 1 ? this.messages[0]! : undefined;
    return {
      error: {
        code: single ? single.MessageId : `${BASE_REGISTRY}.GeneralError`,
        message: single ? single.Message : 'A general error has occurred. See ExtendedInfo for more information.',
        '@Message.ExtendedInfo': this.messages,
      },
    };
  }
}

export const errors = {
  general(status: number, text: string, resolution?: string): RedfishError {
    return new RedfishError(status, [message('GeneralError', text, { severity: 'Critical', ...(resolution ? { resolution } : {}) })]);
  },
  notFound(uri: string): RedfishError {
    return new RedfishError(404, [
      message('ResourceMissingAtURI', `The resource at the URI ${uri} was not found.`, {
        args: [uri],
        severity: 'Critical',
        resolution: 'Place a valid resource at the URI or correct the URI and resubmit the request.',
      }),
    ]);
  },
  unauthorized(realm: string): RedfishError {
    return new RedfishError(
      401,
      [
        message('NoValidSession', 'There is no valid session established with the implementation.', {
          severity: 'Critical',
          resolution: 'Establish a session before attempting any operations, or send valid Basic credentials for this system.',
        }),
      ],
      { 'WWW-Authenticate': `Basic realm="${realm}", charset="UTF-8"` },
    );
  },
  methodNotAllowed(method: string, uri: string, allow: string[]): RedfishError {
    return new RedfishError(
      405,
      [message('ActionNotSupported', `The action ${method} is not supported by the resource ${uri}.`, { args: [method], severity: 'Critical', resolution: `Use one of: ${allow.join(', ')}.` })],
      { Allow: allow.join(', ') },
    );
  },
  actionNotSupported(action: string, why: string): RedfishError {
    return new RedfishError(400, [
      message('ActionNotSupported', `The action ${action} is not supported by the resource: ${why}.`, { args: [action], severity: 'Critical', resolution: 'The action cannot be supported on this resource.' }),
    ]);
  },
  malformedJson(detail: string): RedfishError {
    return new RedfishError(400, [
      message('MalformedJSON', `The request body submitted was malformed JSON and could not be parsed by the receiving service (${detail}).`, {
        severity: 'Critical',
        resolution: 'Ensure that the request body is valid JSON and resubmit the request.',
      }),
    ]);
  },
  unsupportedMediaType(type: string): RedfishError {
    return new RedfishError(415, [
      message('GeneralError', `The content type ${type} is not supported; send application/json.`, { severity: 'Critical', resolution: 'Resubmit with Content-Type: application/json.' }),
    ]);
  },
  bodyTooLarge(limit: number): RedfishError {
    return new RedfishError(413, [
      message('GeneralError', `The request body is larger than the ${limit} bytes this service accepts.`, { severity: 'Critical', resolution: 'Send a smaller request body.' }),
    ]);
  },
  queryNotSupported(param: string): RedfishError {
    return new RedfishError(501, [
      message('QueryNotSupported', `Querying is not supported by the implementation (${param}).`, { args: [param], severity: 'Warning', resolution: 'Remove the query parameters and resubmit the request if the operation failed.' }),
    ]);
  },
  preconditionRequired(): RedfishError {
    return new RedfishError(428, [
      message('PreconditionRequired', 'A precondition header or annotation is required to change the resource.', {
        severity: 'Critical',
        resolution: 'Try the request again with an If-Match header carrying the ETag of the resource.',
      }),
    ]);
  },
  preconditionFailed(): RedfishError {
    return new RedfishError(412, [
      message('PreconditionFailed', 'The ETag supplied did not match the ETag required to change this resource.', {
        severity: 'Critical',
        resolution: 'Try the operation again using the appropriate ETag.',
      }),
    ]);
  },
  serviceUnavailable(status: number): RedfishError {
    return new RedfishError(status, [
      message('ServiceTemporarilyUnavailable', 'The service is temporarily unavailable. Retry in 1 seconds.', {
        args: ['1'],
        severity: 'Critical',
        resolution: 'Wait for the indicated retry duration and retry the operation.',
      }),
    ], { 'Retry-After': '1' });
  },
};

export function propertyUnknown(path: string): RedfishMessage {
  return message('PropertyUnknown', `The property ${path} is not in the list of valid properties for the resource.`, {
    args: [path],
    related: [`#/${path}`],
    resolution: 'Remove the unknown property from the request body and resubmit the request if the operation failed.',
  });
}

export function propertyNotWritable(path: string): RedfishMessage {
  return message('PropertyNotWritable', `The property ${path} is a read only property and cannot be assigned a value.`, {
    args: [path],
    related: [`#/${path}`],
    resolution: 'Remove the property from the request body and resubmit the request if the operation failed.',
  });
}

export function propertyValueNotInList(path: string, value: unknown, allowed: readonly string[]): RedfishMessage {
  return message('PropertyValueNotInList', `The value ${JSON.stringify(value)} for the property ${path} is not in the list of acceptable values (${allowed.join(', ')}).`, {
    args: [JSON.stringify(value), path],
    related: [`#/${path}`],
    resolution: 'Choose a value from the enumeration list that the implementation can support and resubmit the request if the operation failed.',
  });
}

export function propertyValueTypeError(path: string, value: unknown, expected: string): RedfishMessage {
  return message('PropertyValueTypeError', `The value ${JSON.stringify(value)} for the property ${path} is not a ${expected}.`, {
    args: [JSON.stringify(value), path],
    related: [`#/${path}`],
    resolution: 'Correct the value for the property in the request body and resubmit the request if the operation failed.',
  });
}

export function propertyValueFormatError(path: string, value: unknown, why: string): RedfishMessage {
  return message('PropertyValueFormatError', `The value ${JSON.stringify(value)} for the property ${path} is not a format that the property can accept: ${why}.`, {
    args: [JSON.stringify(value), path],
    related: [`#/${path}`],
    resolution: 'Correct the value for the property in the request body and resubmit the request if the operation failed.',
  });
}

export function actionParameterMissing(action: string, param: string): RedfishMessage {
  return message('ActionParameterMissing', `The action ${action} requires the parameter ${param} to be present in the request body.`, {
    args: [action, param],
    severity: 'Critical',
    resolution: 'Supply the action with the required parameter in the request body when the request is resubmitted.',
  });
}

export function actionParameterUnknown(action: string, param: string): RedfishMessage {
  return message('ActionParameterUnknown', `The action ${action} was submitted with the invalid parameter ${param}.`, {
    args: [action, param],
    resolution: 'Correct the invalid parameter and resubmit the request if the operation failed.',
  });
}

export function actionParameterValueNotInList(action: string, param: string, value: unknown, allowed: readonly string[]): RedfishMessage {
  return message('ActionParameterValueNotInList', `The value ${JSON.stringify(value)} for the parameter ${param} in the action ${action} is not in the list of acceptable values (${allowed.join(', ')}).`, {
    args: [JSON.stringify(value), param, action],
    severity: 'Warning',
    resolution: 'Choose a value from the enumeration list that the implementation can support and resubmit the request if the operation failed.',
  });
}

export function successMessage(): RedfishMessage {
  return message('Success', 'The request completed successfully.', { severity: 'OK' });
}
