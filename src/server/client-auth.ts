// The client token: when a server has one, every client request carries it as
// `Authorization: Bearer <token>`. Only digests are compared, in constant time,
// so how long the right prefix of a guess was (or how long the token is)
// cannot be read from response times.
import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

export class ClientTokenCheck {
  private readonly tokenDigest: Buffer;

  constructor(token: string) {
    this.tokenDigest = digest(token);
  }

  /** Why a request with this Authorization header (empty when absent) is refused, or null when it carries the token. */
  refusal(authorization: string): string | null {
    if (authorization === '') return 'this server needs a client token: send the header Authorization: Bearer <token>';
    const space = authorization.indexOf(' ');
    if (space < 0 || authorization.slice(0, space).toLowerCase() !== 'bearer') return 'the Authorization header must be Bearer <token>';
    if (!timingSafeEqual(digest(authorization.slice(space + 1).trim()), this.tokenDigest)) return 'the client token is wrong';
    return null;
  }
}
