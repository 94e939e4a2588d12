import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {parseConfigText} from '../../src/config/load.js'
import {redactSecrets} from '../../src/config/redact.js'
import {redactUrl, urlProblem} from '../../src/config/urls.js'
import {UserError} from '../../src/errors.js'

describe('redaction', () => {
  it('hides every credential part of a URL, read as its client reads it', () => {
    const cases: [string, string][] = [
      ['postgres://feed:pgS3cret@db1/feed', 'postgres://feed:***@db1/feed'],
      // pg honours ?password= (and it wins over the userinfo password).
      ['postgres://feed@db1/feed?password=pgS3cret', 'postgres://feed@db1/feed?password=***'],
      ['postgresql://feed:one@db1/feed?sslmode=verify-full&password=pgS3cret', 'postgresql://feed:***@db1/feed?sslmode=verify-full&password=***'],
      // A raw @ inside the password: the client takes the last @ as the end of the userinfo.
      ['postgres://feed:p@ssS3cret@db1/feed', 'postgres://feed:***@db1/feed'],
      ['redis://:r3dis@Pass@cache1:6379', 'redis://:***@cache1:6379'],
      ['redis://cache1:6379/0?password=r3disPass', 'redis://cache1:6379/0?password=***'],
      ['http://AKIDLAB:awsS3cret@127.0.0.1:4566', 'http://AKIDLAB:***@127.0.0.1:4566/'],
      // Nothing secret: shown exactly as written.
      ['postgres://feed@db1/feed?sslmode=require', 'postgres://feed@db1/feed?sslmode=require'],
      ['https://cdn.example.com', 'https://cdn.example.com'],
      ['not a url', 'not a url'],
    ]
    for (const [url, shown] of cases) assert.equal(redactUrl(url), shown, url)
  })

  it('shows only the scheme of a URL whose password the client would misread (a raw / ? or #)', () => {
    for (const url of ['postgres://feed:pa/ssS3cret@db1/feed', 'postgres://feed:p@ss/S3cret@db1/feed', 'redis://:pa/ssS3cret@cache1:6379', 'postgres://feed:a#S3cret@db1/x']) {
      const shown = redactUrl(url)
      assert.ok(!shown.includes('S3cret') && !shown.includes('ss'), `${url} → ${shown}`)
      assert.match(shown, /^[a-z]+:\/\/\*\*\*$/)
    }
  })

  it('hides free-form secret keys at any depth', () => {
    const shown = redactSecrets({app: {apiKey: 'k1', api_key: 'k2', dbPasswd: 'k3', privateKey: 'k4', cdnBase: 'https://c'}, list: [{token: 't'}]})
    assert.deepEqual(shown, {app: {apiKey: '***', api_key: '***', dbPasswd: '***', privateKey: '***', cdnBase: 'https://c'}, list: [{token: '***'}]})
  })

  it('the config refuses a URL its client would misread, naming the key and never the value', () => {
    const file = (url: string) => `environments:\n  prod:\n    inventory: {source: ec2}\n    shards: {catalog: 'postgres://feed@db1/c', servers: [{name: pg1, url: '${url}'}]}\n`
    for (const url of ['postgres://feed:pa/ssS3cret@db1/feed', 'postgres://feed:p@ss/S3cret@db1/feed']) {
      assert.ok(urlProblem(url))
      assert.throws(
        () => parseConfigText(file(url), 'feedops.yml'),
        (err: unknown) =>
          err instanceof UserError &&
          /feedops\.yml is invalid: environments\.prod\.shards\.servers\.0\.url: expected a postgres:\/\/ URL, but .*%40, %2F/.test(err.message) &&
          !err.message.includes('S3cret'),
      )
    }
    assert.equal(urlProblem('postgres://feed:p%2Fss@db1/feed'), undefined)
    // Parsing reads no ssl file and warns about no sslmode.
    assert.equal(urlProblem('postgres://feed:pw@db1/feed?sslmode=require&sslkey=/nonexistent/key'), undefined)
    // pg's own form for a socket directory: no host in the authority.
    assert.equal(urlProblem('postgres://feed:pw@/feed?host=/var/run/postgresql'), undefined)
    assert.equal(redactUrl('postgres://feed:pw@/feed?host=/var/run/postgresql'), 'postgres://***')
  })
})
