// The slice of the DNS wire format (RFC 1035 §4) the sidecar resolver needs: read the header and the
// single question of a query, build answers for intercepted names, and patch the ID of forwarded
// messages. Parsing walks the buffer with explicit bounds and returns a reason instead of throwing, so
// any datagram — truncated, looping, oversized — yields either a question or a FORMERR, never a crash.

export const DNS_HEADER_BYTES = 12
export const MAX_NAME_BYTES = 255
const MAX_LABEL_BYTES = 63

export const RCODE = {formErr: 1, noError: 0, notImp: 4, nxDomain: 3, refused: 5, servFail: 2} as const
export const QTYPE = {a: 1, aaaa: 28, any: 255} as const
export const QCLASS_IN = 1

export interface DnsQuestion {
  /** lower-case, no trailing dot; '' is the root */
  name: string
  qclass: number
  qtype: number
}

export interface DnsQuery {
  /** the question section's bytes exactly as received (echoed back in answers) */
  questionBytes: Buffer
  flags: number
  id: number
  opcode: number
  question: DnsQuestion
}

export type ParseResult =
  | {ok: true; query: DnsQuery}
  /** id is undefined when not even a header arrived (nothing can be answered) */
  | {id?: number; ok: false; reason: string; rcode: number}

/** Parse a query message: a header with QR=0 and exactly one question. Never throws. */
export function parseQuery(message: Buffer): ParseResult {
  if (message.length < DNS_HEADER_BYTES) return {ok: false, reason: 'shorter than a DNS header', rcode: RCODE.formErr}
  const id = message.readUInt16BE(0)
  const flags = message.readUInt16BE(2)
  if (flags & 0x8000) return {ok: false, reason: 'a response, not a query', rcode: RCODE.formErr}
  const opcode = (flags >> 11) & 0xf
  const qdcount = message.readUInt16BE(4)
  if (qdcount !== 1) return {id, ok: false, reason: `${qdcount} questions (exactly 1 supported)`, rcode: RCODE.formErr}
  const name = readQuestionName(message, DNS_HEADER_BYTES)
  if (!name.ok) return {id, ok: false, reason: name.reason, rcode: RCODE.formErr}
  if (name.end + 4 > message.length) return {id, ok: false, reason: 'question type/class truncated', rcode: RCODE.formErr}
  const question = {name: name.name, qclass: message.readUInt16BE(name.end + 2), qtype: message.readUInt16BE(name.end)}
  if (opcode !== 0) return {id, ok: false, reason: `opcode ${opcode} not supported`, rcode: RCODE.notImp}
  return {ok: true, query: {flags, id, opcode, question, questionBytes: message.subarray(DNS_HEADER_BYTES, name.end + 4)}}
}

/**
 * Read an uncompressed name (queries carry no compression pointers in the question). The loop is bounded
 * by the name length limit, so a hostile label chain cannot spin.
 */
function readQuestionName(message: Buffer, start: number): {end: number; name: string; ok: true} | {ok: false; reason: string} {
  const labels: string[] = []
  let offset = start
  let total = 0
  while (true) {
    if (offset >= message.length) return {ok: false, reason: 'name truncated'}
    const length = message[offset]
    if (length === 0) return {end: offset + 1, name: labels.join('.').toLowerCase(), ok: true}
    if (length & 0xc0) return {ok: false, reason: 'compression pointer or reserved label type in the question'}
    if (length > MAX_LABEL_BYTES) return {ok: false, reason: 'label longer than 63 bytes'}
    total += length + 1
    if (total + 1 > MAX_NAME_BYTES) return {ok: false, reason: 'name longer than 255 bytes'}
    if (offset + 1 + length > message.length) return {ok: false, reason: 'label truncated'}
    labels.push(message.toString('latin1', offset + 1, offset + 1 + length))
    offset += 1 + length
  }
}

/** Encode NAME as a question (tests and clients build queries with it). */
export function encodeQuestion(question: DnsQuestion): Buffer {
  const name = question.name.replace(/\.$/, '')
  const labels = name === '' ? [] : name.split('.')
  const parts: Buffer[] = []
  for (const label of labels) {
    const bytes = Buffer.from(label, 'latin1')
    if (bytes.length === 0 || bytes.length > MAX_LABEL_BYTES) throw new Error(`bad DNS label in ${question.name}`)
    parts.push(Buffer.from([bytes.length]), bytes)
  }

  const tail = Buffer.alloc(5)
  tail.writeUInt16BE(question.qtype, 1)
  tail.writeUInt16BE(question.qclass, 3)
  return Buffer.concat([...parts, tail])
}

/** A standard query with RD set (what a stub resolver sends). */
export function buildQuery(id: number, question: DnsQuestion): Buffer {
  const header = Buffer.alloc(DNS_HEADER_BYTES)
  header.writeUInt16BE(id, 0)
  header.writeUInt16BE(0x0100, 2)
  header.writeUInt16BE(1, 4)
  return Buffer.concat([header, encodeQuestion(question)])
}

export interface AnswerOptions {
  /** IPv4 addresses for A records (empty: an empty answer with RCODE) */
  addresses?: readonly string[]
  authoritative?: boolean
  rcode: number
  ttl?: number
}

/** A response to QUERY: the question echoed, then A records (name = pointer to the question). */
export function buildResponse(query: Pick<DnsQuery, 'flags' | 'id' | 'opcode' | 'questionBytes'>, options: AnswerOptions): Buffer {
  const addresses = options.addresses ?? []
  const header = Buffer.alloc(DNS_HEADER_BYTES)
  header.writeUInt16BE(query.id, 0)
  // QR=1, the query's opcode and RD, RA=1 (we recurse through the upstream), AA for names we own.
  const flags = 0x8000 | (query.opcode << 11) | (options.authoritative ? 0x0400 : 0) | (query.flags & 0x0100) | 0x0080 | (options.rcode & 0xf)
  header.writeUInt16BE(flags, 2)
  header.writeUInt16BE(query.questionBytes.length > 0 ? 1 : 0, 4)
  header.writeUInt16BE(addresses.length, 6)
  const records = addresses.map((address) => {
    const record = Buffer.alloc(16)
    record.writeUInt16BE(0xc000 | DNS_HEADER_BYTES, 0)
    record.writeUInt16BE(QTYPE.a, 2)
    record.writeUInt16BE(QCLASS_IN, 4)
    record.writeUInt32BE(options.ttl ?? 60, 6)
    record.writeUInt16BE(4, 10)
    for (const [index, part] of address.split('.').entries()) record[12 + index] = Number(part)
    return record
  })
  return Buffer.concat([header, query.questionBytes, ...records])
}

/** An error response when the question could not be read: header only, same ID, QR=1. */
export function buildHeaderOnlyError(id: number, rcode: number): Buffer {
  return buildResponse({flags: 0, id, opcode: 0, questionBytes: Buffer.alloc(0)}, {rcode})
}

/** A copy of MESSAGE with another ID (forwarding swaps IDs both ways). */
export function withId(message: Buffer, id: number): Buffer {
  const copy = Buffer.from(message)
  copy.writeUInt16BE(id, 0)
  return copy
}

/** What a test or diagnostic needs from a response; undefined when it is not a readable response. */
export interface DnsResponseSummary {
  addresses: string[]
  answerCount: number
  authoritative: boolean
  id: number
  rcode: number
  truncated: boolean
}

/** Read a response's header and its A records (skipping other records). Bounded; never throws. */
export function parseResponse(message: Buffer): DnsResponseSummary | undefined {
  if (message.length < DNS_HEADER_BYTES) return undefined
  const flags = message.readUInt16BE(2)
  if (!(flags & 0x8000)) return undefined
  const qdcount = message.readUInt16BE(4)
  const ancount = message.readUInt16BE(6)
  let offset = DNS_HEADER_BYTES
  for (let index = 0; index < qdcount; index++) {
    const end = skipName(message, offset)
    if (end === undefined || end + 4 > message.length) return undefined
    offset = end + 4
  }

  const addresses: string[] = []
  for (let index = 0; index < ancount; index++) {
    const end = skipName(message, offset)
    if (end === undefined || end + 10 > message.length) return undefined
    const type = message.readUInt16BE(end)
    const length = message.readUInt16BE(end + 8)
    if (end + 10 + length > message.length) return undefined
    if (type === QTYPE.a && length === 4) addresses.push([...message.subarray(end + 10, end + 14)].join('.'))
    offset = end + 10 + length
  }

  return {addresses, answerCount: ancount, authoritative: Boolean(flags & 0x0400), id: message.readUInt16BE(0), rcode: flags & 0xf, truncated: Boolean(flags & 0x0200)}
}

/** The offset after a (possibly compressed) name; a pointer ends the name. */
function skipName(message: Buffer, start: number): number | undefined {
  let offset = start
  for (let steps = 0; steps < 128; steps++) {
    if (offset >= message.length) return undefined
    const length = message[offset]
    if (length === 0) return offset + 1
    if ((length & 0xc0) === 0xc0) return offset + 2 <= message.length ? offset + 2 : undefined
    if (length & 0xc0) return undefined
    offset += 1 + length
  }

  return undefined
}
