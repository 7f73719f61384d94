// A hub: frames delivered to one port leave through every other port (QEMU's net/hub.c).
// Hubs and their ports are listed newest first, as QEMU does.
import { TypedEmitter } from '../util/typed-emitter';
import type { OwnerHooks } from './internal';
import type { Client, NetClient } from './net-client';

export type HubEvents = {
  closed: [];
};

export class Hub extends TypedEmitter<HubEvents> implements AsyncDisposable {
  readonly id: number;
  /** @internal newest first */
  readonly portClients: Client[] = [];
  #nextPort = 0;
  #closed = false;
  readonly #owner: OwnerHooks;

  /** @internal */
  constructor(owner: OwnerHooks, id: number) {
    super();
    this.#owner = owner;
    this.id = id;
  }

  /** The hub's ports, newest first. */
  get ports(): readonly NetClient[] {
    return this.portClients;
  }

  /** @internal The number takePortNumber() hands out next. */
  get nextPortNumber(): number {
    return this.#nextPort;
  }

  /** @internal The running port number (`hub<id>port<k>` default names). */
  takePortNumber(): number {
    return this.#nextPort++;
  }

  /** @internal */
  addPort(c: Client): void {
    this.portClients.unshift(c);
  }

  /** @internal */
  removePort(c: Client): void {
    const i = this.portClients.indexOf(c);
    if (i >= 0) this.portClients.splice(i, 1);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** @internal */
  markClosed(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.emit('closed');
  }

  /** Delete every hubport netdev on this hub and the hub itself. */
  async close(): Promise<void> {
    this.#owner.remove();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
