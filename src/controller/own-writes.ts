/**
 * Recognizes the watch events of the controller's own writes, so that they do not queue the
 * reconcile that made them again (docs/adr/0003). A write's response carries the object's new
 * resourceVersion; the watch event of that same version is its echo and tells the controller
 * nothing it does not already hold in its cache (the reconciler `observe`s every response).
 *
 * The response and the event travel on different connections, so either may come first:
 * - response first: `written` records the version and the event with that version is absorbed;
 * - event first: between `begin` and `end` events of the object are held, not acted on; `end`
 *   absorbs a held event of the written version and reports any other (someone else's change
 *   in the meantime, or a failed write) so that the caller queues its reconcile after all.
 * Deletions are never absorbed (the controller does not delete the objects it tracks here).
 */
export interface OwnWrites {
  /** Before a write of object `id` (`<plural>:<namespace>/<name>`). */
  begin(id: string): void;
  /**
   * After that write: `resourceVersion` of the response, or undefined when the write failed.
   * True when an event held meanwhile was not this write's echo: the caller must act on it.
   */
  end(id: string, resourceVersion: string | undefined): boolean;
  /** For an added or modified event: true when it is an echo or held (the caller ignores it). */
  absorbs(id: string, resourceVersion: string | undefined): boolean;
  /** After a deletion event: nothing of the object is remembered. */
  forget(id: string): void;
  /** Writes whose echo has not arrived yet (bounded by the number of tracked objects). */
  size(): number;
}

export function createOwnWrites(): OwnWrites {
  /** id → resourceVersion of our last write whose echo has not arrived. */
  const written = new Map<string, string>();
  /** id → writes in flight (one reconcile per owner, but be safe) and the versions of held events. */
  const inFlight = new Map<string, { count: number; held: (string | undefined)[] }>();

  return {
    begin(id) {
      const entry = inFlight.get(id);
      if (entry) entry.count++;
      else inFlight.set(id, { count: 1, held: [] });
    },
    end(id, resourceVersion) {
      const entry = inFlight.get(id);
      if (!entry) return false;
      if (--entry.count > 0) return false;
      inFlight.delete(id);
      const echoCame = resourceVersion !== undefined && entry.held.includes(resourceVersion);
      if (resourceVersion === undefined || echoCame) written.delete(id);
      else written.set(id, resourceVersion);
      // Any event of another version held meanwhile: someone else changed the object (or it is
      // an older version our write replaced); acting on it costs one reconcile, missing it drift.
      return entry.held.some((held) => held !== resourceVersion);
    },
    absorbs(id, resourceVersion) {
      const entry = inFlight.get(id);
      if (entry) {
        entry.held.push(resourceVersion);
        return true;
      }
      const own = written.get(id);
      if (own !== undefined && own === resourceVersion) {
        written.delete(id);
        return true;
      }
      return false;
    },
    forget(id) {
      written.delete(id);
    },
    size: () => written.size,
  };
}

/** The id of an object in OwnWrites. */
export function ownWriteId(plural: string, key: string): string {
  return `${plural}:${key}`;
}
