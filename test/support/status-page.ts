/**
 * A browser-side condition for playwright's waitForFunction: the status page
 * lists `count` members, every one reachable, exactly one leading. A string,
 * because this project compiles without the DOM library.
 */
export function membersShown(count: number): string {
  return `(() => {
    const rows = [...document.querySelectorAll('#members tr')];
    return rows.length === ${count} && rows.every((r) => r.children[1].textContent !== 'unreachable') && document.querySelectorAll('#members tr.leader').length === 1;
  })()`;
}
