// What the cluster records about each member, beside Raft's configuration:
// where its peers reach it, and where clients reach it (announced by the
// member itself once it runs). Stored as JSON in the key-value state
// machine's member metadata, so it replicates and survives snapshots.
export interface MemberInfo {
  /** HOST:PORT of its peer transport. */
  peer: string;
  /** Its client API base URL, once the member has announced it. */
  client?: string;
}

export function encodeMemberInfo(info: MemberInfo): string {
  return JSON.stringify(info);
}

/** Parses recorded metadata; anything unreadable counts as no information. */
export function parseMemberInfo(text: string): MemberInfo | null {
  try {
    const v = JSON.parse(text) as MemberInfo;
    return typeof v?.peer === 'string' ? v : null;
  } catch {
    return null;
  }
}
