import {XMLBuilder} from 'fast-xml-parser'

import type {CloudApiError} from './errors.js'

/**
 * AWS query-protocol XML. Objects become elements, arrays repeat their element (so `{item: [a, b]}`
 * is `<item>a</item><item>b</item>`), keys starting with `@_` are attributes, undefined is left out.
 */
export type XmlValue = string | number | boolean | undefined | XmlObject | XmlValue[]
export interface XmlObject {
  [key: string]: XmlValue
}

const builder = new XMLBuilder({ignoreAttributes: false, attributeNamePrefix: '@_', suppressEmptyNode: false})

export function toXml(rootName: string, body: XmlObject, xmlns?: string): string {
  const root: XmlObject = xmlns ? {'@_xmlns': xmlns, ...body} : body
  return builder.build({'?xml': {'@_version': '1.0', '@_encoding': 'UTF-8'}, [rootName]: root}) as string
}

/** EC2's error document: `<Response><Errors><Error><Code>…</Code><Message>…</Message></Error></Errors><RequestID>`. */
export function ec2ErrorXml(err: CloudApiError, requestId: string): string {
  return toXml('Response', {Errors: {Error: {Code: err.code, Message: err.message}}, RequestID: requestId})
}

/** A query-protocol answer (ELB, ELBv2): `<XResponse><XResult>…</XResult><ResponseMetadata><RequestId>`. */
export function queryResponseXml(action: string, result: XmlObject | undefined, requestId: string, xmlns: string): string {
  return toXml(`${action}Response`, {[`${action}Result`]: result ?? '', ResponseMetadata: {RequestId: requestId}}, xmlns)
}

/** The query protocol's error document: `<ErrorResponse><Error><Type>Sender</Type><Code>…`. */
export function queryErrorXml(err: CloudApiError, requestId: string, xmlns: string): string {
  return toXml('ErrorResponse', {Error: {Type: err.status >= 500 ? 'Receiver' : 'Sender', Code: err.code, Message: err.message}, RequestId: requestId}, xmlns)
}
