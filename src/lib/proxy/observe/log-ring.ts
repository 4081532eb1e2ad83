// The agent's recent log lines in memory, for `ztctl logs AGENT [-f]` through the admin port's /logs:
// a bounded ring (lines and bytes) that every log line also goes through, and a bounded set of
// followers that receive new lines as they are written.

const MAX_LINES = 2000
const MAX_BYTES = 2 * 1024 * 1024
export const MAX_FOLLOWERS = 16

export class LogRing {
  private bytes = 0
  private readonly followers = new Set<(line: string) => void>()
  private readonly lines: string[] = []

  push(line: string): void {
    this.lines.push(line)
    this.bytes += line.length
    while (this.lines.length > MAX_LINES || this.bytes > MAX_BYTES) this.bytes -= this.lines.shift()!.length
    for (const follower of this.followers) follower(line)
  }

  /** The last COUNT lines, oldest first. */
  tail(count: number): string[] {
    return count <= 0 ? [] : this.lines.slice(-count)
  }

  /** Receive every new line until the returned function is called; undefined when too many follow already. */
  follow(onLine: (line: string) => void): (() => void) | undefined {
    if (this.followers.size >= MAX_FOLLOWERS) return undefined
    this.followers.add(onLine)
    return () => this.followers.delete(onLine)
  }

  /** A pino destination that writes to DESTINATION and keeps each line here too. */
  tee(destination: {flush?(callback?: (error?: Error) => void): void; write(line: string): unknown}): {flush(callback?: (error?: Error) => void): void; write(line: string): boolean} {
    return {
      flush: (callback) => (destination.flush ? destination.flush(callback) : callback?.()),
      write: (line) => {
        this.push(line)
        destination.write(line)
        return true
      },
    }
  }
}
