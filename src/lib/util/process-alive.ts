// Whether a process id still names a running process (lock owners, agents' ready files).

/** Signal 0 checks without signalling; EPERM means it runs as another user, which is alive too. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}
