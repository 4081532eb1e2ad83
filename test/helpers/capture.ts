// A packet capture inside a test namespace (tshark), for "only TLS on the wire" checks: started, awaited
// until tshark says it is capturing, then read once it stopped (by duration or packet count).
//   const capture = await startCapture(topo, node.netns, {filter: 'tcp and not port 15012', iface: 'any', seconds: 6})
//   … traffic …
//   const packets = await capture.packets()   // [{source, destination, length, protocol, payload: Buffer}]
import type {Topology} from './netns.js'

export interface CapturedPacket {
  destination: string
  length: number
  payload: Buffer
  protocol: string
  source: string
}

export async function startCapture(topo: Topology, netns: string, options: {filter: string; iface: string; maxPackets?: number; seconds: number}): Promise<{log: () => string; packets: () => Promise<CapturedPacket[]>}> {
  const child = topo.spawn(netns, 'tshark', ['-i', options.iface, '-n', '-l', '-f', options.filter, '-a', `duration:${options.seconds}`, '-c', String(options.maxPackets ?? 600),
    '-T', 'fields', '-E', 'separator=,', '-e', 'tcp.srcport', '-e', 'tcp.dstport', '-e', 'tcp.len', '-e', '_ws.col.Protocol', '-e', 'tcp.payload'])
  let captured = ''
  let log = ''
  child.stdout!.on('data', (chunk: Buffer) => (captured += chunk.toString()))
  child.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()))
  const done = new Promise((resolve) => child.once('exit', resolve))
  const deadline = Date.now() + 10_000
  while (!log.includes('Capturing on')) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`tshark did not start capturing: ${log}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }

  return {
    log: () => log,
    async packets() {
      await done
      return captured.trim().split('\n').filter(Boolean).map((line) => {
        const [source = '', destination = '', length = '0', protocol = '', payload = ''] = line.split(',')
        return {destination, length: Number(length), payload: Buffer.from(payload, 'hex'), protocol, source}
      })
    },
  }
}
