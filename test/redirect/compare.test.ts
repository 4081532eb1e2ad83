// The firewall comparison of `redirect remove` on save texts as both iptables variants and nft print them:
// empty tables and chains are no difference; rules, policies, order and duplicates are.
import assert from 'node:assert/strict'
import {test} from 'node:test'

import {diffModels, diffSnapshots, iptablesModel, nftModel} from '../../src/lib/redirect/compare.js'

const EMPTY_TABLES = `*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
COMMIT
*nat
:PREROUTING ACCEPT [3:180]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:UNUSED - [0:0]
COMMIT
`

const OWN_RULES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 9 -j DROP
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:MINE - [0:0]
-A PREROUTING -j MINE
-A MINE -j MARK --set-xmark 0x7/0xffffffff
COMMIT
`

test('empty built-in tables, ACCEPT policies and empty user chains are nothing; rules, other policies and user chains with rules are the firewall', () => {
  assert.deepEqual(iptablesModel(''), new Map())
  assert.deepEqual(iptablesModel(EMPTY_TABLES), new Map())
  assert.deepEqual(diffSnapshots('iptables-legacy', {iptables4: '', iptables6: ''}, {iptables4: EMPTY_TABLES, iptables6: EMPTY_TABLES}), [])
  assert.deepEqual([...iptablesModel(OWN_RULES).values()].flat(), [
    '-t filter -P FORWARD DROP',
    '-t filter -A INPUT -p tcp -m tcp --dport 9 -j DROP',
    '-t mangle -A PREROUTING -j MINE',
    '-t mangle -A MINE -j MARK --set-xmark 0x7/0xffffffff',
  ])
  assert.deepEqual(diffSnapshots('iptables-nft', {iptables4: OWN_RULES}, {iptables4: `${EMPTY_TABLES}${OWN_RULES}`}), [], 'tables in another order, empty ones added')
})

test('changes are named: new and gone rules (duplicates counted), a policy, the order of a chain', () => {
  const changed = OWN_RULES.replace(':FORWARD DROP', ':FORWARD ACCEPT').replace('-A INPUT -p tcp -m tcp --dport 9 -j DROP', '-A INPUT -p tcp -m tcp --dport 9 -j DROP\n-A INPUT -p tcp -m tcp --dport 9 -j DROP\n-A INPUT -s 10.0.0.1/32 -j ACCEPT')
  assert.deepEqual(diffSnapshots('iptables-legacy', {iptables4: OWN_RULES}, {iptables4: changed}), [
    'iptables-legacy IPv4: gone since add: -t filter -P FORWARD DROP',
    'iptables-legacy IPv4: new since add: -t filter -A INPUT -p tcp -m tcp --dport 9 -j DROP',
    'iptables-legacy IPv4: new since add: -t filter -A INPUT -s 10.0.0.1/32 -j ACCEPT',
  ])
  const twoRules = iptablesModel('*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p udp -j DROP\n-A INPUT -p tcp -j DROP\nCOMMIT\n')
  const swapped = iptablesModel('*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -j DROP\n-A INPUT -p udp -j DROP\nCOMMIT\n')
  assert.deepEqual(diffModels('iptables-nft IPv6', twoRules, swapped), ['iptables-nft IPv6: -t filter -A INPUT: the same rules as before add, in another order'])
})

test('nft rulesets: empty tables and accepting base chains are nothing; statements and a drop policy are the firewall', () => {
  const empty = 'table ip nat {\n\tchain PREROUTING {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t}\n}\ntable inet idle {\n}'
  assert.deepEqual(nftModel(empty), new Map())
  const own = 'table inet mine {\n\tset allowed {\n\t\ttype ipv4_addr\n\t\telements = { 10.0.0.1, 10.0.0.2 }\n\t}\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tip saddr @allowed accept\n\t}\n}'
  assert.deepEqual([...nftModel(own).values()].flat(), [
    'table inet mine set allowed: type ipv4_addr',
    'table inet mine set allowed: elements = { 10.0.0.1, 10.0.0.2 }',
    'table inet mine chain input: type filter hook input priority filter; policy drop;',
    'table inet mine chain input: ip saddr @allowed accept',
  ])
  assert.deepEqual(diffSnapshots('iptables-nft', {nft: own}, {nft: `${own}\n${empty}`}), [])
  assert.deepEqual(diffSnapshots('iptables-nft', {nft: own}, {nft: own.replace('policy drop', 'policy accept')}), ['nft: gone since add: table inet mine chain input: type filter hook input priority filter; policy drop;'])
})
