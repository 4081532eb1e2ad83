// One finding of `ztctl diag redirect` (its own module, so the checks in separate files share it without an import cycle).

/** What is fine, or what is missing or wrong, in words, with the command that fixes it. */
export interface DiagCheck {
  /** stable key, e.g. 'iptables4/nat/outbound-redirect', 'listener/15001', 'routing4/rule' */
  id: string
  area: 'agent' | 'firewall' | 'listeners' | 'routing'
  ok: boolean
  /** a sentence: what is fine, or what is missing/wrong and what that breaks */
  message: string
  /** the command that fixes it (where no one command can: the fix in words, with an example command) */
  fix?: string
}
