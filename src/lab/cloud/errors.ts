/** An error the cloud endpoint answers in the service's XML error format (AWS's code, message, status). */
export class CloudApiError extends Error {
  override readonly name = 'CloudApiError'
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
  ) {
    super(message)
  }
}

export function invalidParameterValue(message: string): CloudApiError {
  return new CloudApiError('InvalidParameterValue', message)
}
