// The console socket (hotline/softphone_bridge/PROTOCOL.md): hello with the token, resume from
// the last sequence number seen, reconnect by itself with a growing pause, commands with an id
// whose reply (ok / pong / error) settles a promise.

export class ConsoleSocket {
  constructor(url, token, handlers) {
    this.url = url
    this.token = token
    this.handlers = handlers // { message(m), online(bool), closed(code, reason) }
    this.lastSeq = null
    this.nextId = 1
    this.waiting = new Map()
    this.pause = 500
    this.stopped = false
    this.takeOver = false
  }

  open(takeOver = false) {
    this.takeOver = takeOver
    this.stopped = false
    const ws = new WebSocket(this.url)
    this.ws = ws
    ws.onopen = () => {
      const hello = { type: 'hello', token: this.token }
      if (this.lastSeq !== null) hello.last_seq = this.lastSeq
      if (this.takeOver) hello.take_over = true
      ws.send(JSON.stringify(hello))
    }
    ws.onmessage = (event) => this.received(JSON.parse(event.data))
    ws.onclose = (event) => this.lost(event)
  }

  received(message) {
    if (message.type === 'welcome') {
      this.pause = 500
      if (message.reset) this.lastSeq = message.seq
      this.handlers.online(true)
    }
    if (typeof message.seq === 'number' && (this.lastSeq === null || message.seq > this.lastSeq)) {
      this.lastSeq = message.seq
    }
    if (message.ref !== undefined && this.waiting.has(message.ref)) {
      const { resolve, reject } = this.waiting.get(message.ref)
      this.waiting.delete(message.ref)
      if (message.type === 'error') reject(message)
      else resolve(message)
      return
    }
    this.handlers.message(message)
  }

  lost(event) {
    this.handlers.online(false)
    for (const { reject } of this.waiting.values()) reject({ code: 'offline', message: '连接已断开' })
    this.waiting.clear()
    // 4401 unauthorized, 4403 forbidden, 4409 taken over: a person decides, no reconnect
    const final = [4401, 4403, 4409].includes(event.code)
    this.handlers.closed(event.code, event.reason)
    if (this.stopped || final) return
    this.takeOver = false
    setTimeout(() => { if (!this.stopped) this.open() }, this.pause)
    this.pause = Math.min(this.pause * 2, 10000)
  }

  send(type, fields = {}) {
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
        reject({ code: 'offline', message: '连接已断开' })
        return
      }
      this.waiting.set(id, { resolve, reject })
      this.ws.send(JSON.stringify({ type, id, ...fields }))
    })
  }

  close() {
    this.stopped = true
    if (this.ws) this.ws.close(1000)
  }
}

export async function api(token, method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const data = await response.json().catch(() => ({}))
  if (!response.ok) throw { status: response.status, ...data }
  return data
}
