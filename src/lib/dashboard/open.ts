// --open: the platform's own "open this URL" program, detached, its output ignored.
import {execa} from 'execa'

const OPENERS: Partial<Record<NodeJS.Platform, [string, string[]]>> = {
  darwin: ['open', []],
  win32: ['cmd', ['/c', 'start', '""']],
}

export async function openInBrowser(url: string): Promise<void> {
  const [command, args] = OPENERS[process.platform] ?? ['xdg-open', []]
  // xdg-open and its peers hand the URL to the browser and exit.
  await execa(command, [...args, url], {detached: true, stdio: 'ignore', timeout: 10_000})
}
