import assert from 'node:assert/strict'
import {describe, test} from 'node:test'

import {
  AMBIENT_MODE, DATAPLANE_MODE_LABEL, type EnrollmentNamespace, type EnrollmentPod, enrollmentOf, REDIRECTION_ANNOTATION, serviceAccountOf,
  workloadSpiffeOf,
} from '../../src/lib/kube/enrollment.js'

const ambient = (name: string): EnrollmentNamespace => ({metadata: {labels: {[DATAPLANE_MODE_LABEL]: AMBIENT_MODE}, name}})
const pod = (namespace: string, extra: {annotations?: Record<string, string>; hostNetwork?: boolean; phase?: string; sa?: string} = {}): EnrollmentPod => ({
  metadata: {annotations: extra.annotations, name: 'web-1', namespace},
  spec: {hostNetwork: extra.hostNetwork, serviceAccountName: extra.sa},
  status: {phase: extra.phase ?? 'Running'},
})

describe('enrollmentOf', () => {
  test('a pod of a namespace labelled ambient is enrolled', () => {
    assert.deepEqual(enrollmentOf(pod('shop'), ambient('shop')), {detail: `namespace shop is labelled ${DATAPLANE_MODE_LABEL}=ambient`, enrolled: true, reason: 'enrolled'})
    assert.equal(enrollmentOf(pod('shop', {phase: 'Pending'}), ambient('shop')).enrolled, true, 'a pod is enrolled before it runs (the CNI ADD sees it Pending)')
  })

  test('a namespace without the label, or with another mode, keeps its pods out', () => {
    assert.equal(enrollmentOf(pod('shop'), {metadata: {name: 'shop'}}).reason, 'namespace-not-ambient')
    const other = enrollmentOf(pod('shop'), {metadata: {labels: {[DATAPLANE_MODE_LABEL]: 'none'}, name: 'shop'}})
    assert.deepEqual([other.enrolled, other.reason, other.detail], [false, 'namespace-not-ambient', `namespace shop has ${DATAPLANE_MODE_LABEL}=none, not ambient`])
    assert.equal(enrollmentOf(pod('shop'), {metadata: {labels: {[DATAPLANE_MODE_LABEL]: 'Ambient'}, name: 'shop'}}).enrolled, false, 'the value is case-sensitive')
  })

  test('the opt-out annotation keeps a pod out; any other value does not', () => {
    assert.equal(enrollmentOf(pod('shop', {annotations: {[REDIRECTION_ANNOTATION]: 'disabled'}}), ambient('shop')).reason, 'opted-out')
    assert.equal(enrollmentOf(pod('shop', {annotations: {[REDIRECTION_ANNOTATION]: 'enabled'}}), ambient('shop')).enrolled, true)
  })

  test('hostNetwork pods are never enrolled, whatever else', () => {
    assert.equal(enrollmentOf(pod('shop', {hostNetwork: true}), ambient('shop')).reason, 'host-network')
    assert.equal(enrollmentOf(pod('kube-system', {hostNetwork: true}), ambient('kube-system')).reason, 'host-network')
  })

  test('excluded namespaces stay out even when labelled; the list is configurable', () => {
    for (const ns of ['kube-system', 'ztctl-system']) assert.equal(enrollmentOf(pod(ns), ambient(ns)).reason, 'excluded-namespace')
    assert.equal(enrollmentOf(pod('kube-system'), ambient('kube-system'), {excludedNamespaces: []}).enrolled, true)
    assert.equal(enrollmentOf(pod('shop'), ambient('shop'), {excludedNamespaces: ['shop']}).reason, 'excluded-namespace')
  })

  test('finished pods are out; an unknown namespace is not a yes', () => {
    assert.equal(enrollmentOf(pod('shop', {phase: 'Succeeded'}), ambient('shop')).reason, 'finished')
    assert.equal(enrollmentOf(pod('shop', {phase: 'Failed'}), ambient('shop')).reason, 'finished')
    assert.equal(enrollmentOf(pod('shop'), undefined).reason, 'namespace-unknown')
    assert.equal(enrollmentOf({}, undefined).enrolled, false, 'an empty object decides, never throws')
  })

  test('service account and SPIFFE ID of a pod', () => {
    assert.equal(serviceAccountOf(pod('shop')), 'default')
    assert.equal(serviceAccountOf(pod('shop', {sa: 'web'})), 'web')
    assert.equal(workloadSpiffeOf('cluster.local', pod('shop', {sa: 'web'})), 'spiffe://cluster.local/ns/shop/sa/web')
  })
})
