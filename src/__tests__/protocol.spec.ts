import {
  checkReply,
  checkRequest,
  COMM_TARGET,
  KERNEL_ERROR_CODES,
  makeRequest,
  METHODS,
  PROTOCOL_VERSION,
  ProtocolError,
  STAGES
} from '../protocol';
import { loadProtocolFixtures } from './fixtures';

const fixtures = loadProtocolFixtures();

/** [label, message] rows for it.each from fixture entries. */
function rows(
  entries: any[],
  label: (entry: any) => string,
  message = (e: any) => e
): [string, any][] {
  return entries.map(entry => [label(entry), message(entry)]);
}

describe('protocol constants', () => {
  it('match the fixtures shared with the Python side', () => {
    expect(PROTOCOL_VERSION).toBe(fixtures.protocol_version);
    expect(COMM_TARGET).toBe(fixtures.comm_target);
    expect([...METHODS]).toEqual(fixtures.methods);
    expect([...STAGES]).toEqual(fixtures.stages);
    expect([...KERNEL_ERROR_CODES].sort()).toEqual(
      [...fixtures.error_codes].sort()
    );
  });
});

describe('requests', () => {
  it.each(rows(fixtures.requests.valid, m => m.method))(
    'accepts the valid %s fixture and builds the same message',
    (_method, message: any) => {
      expect(checkRequest(message)).toEqual(message);
      expect(makeRequest(message.id, message.method, message.params)).toEqual(
        message
      );
    }
  );

  it.each(
    rows(
      fixtures.requests.invalid,
      c => c.why,
      c => c.message
    )
  )('refuses an invalid request: %s', (_why, message) => {
    expect(() => checkRequest(message)).toThrow(ProtocolError);
  });
});

describe('replies', () => {
  it.each(rows(fixtures.replies.valid, m => m.type))(
    'accepts the valid %s fixture',
    (_type, message: any) => {
      expect(checkReply(message)).toEqual(message);
    }
  );

  it.each(
    rows(
      fixtures.replies.invalid,
      c => c.why,
      c => c.message
    )
  )('refuses an invalid reply: %s', (_why, message) => {
    expect(() => checkReply(message)).toThrow(ProtocolError);
  });
});
