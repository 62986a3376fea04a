// The lab files in vitest's own order, but the stretched cluster's last: it freezes the two sites
// and times round trips to the millisecond, so it runs once the unit files (which share the 2
// cores with the lab's first files) are done and no other lab file needs the sites.
import { BaseSequencer, type TestSpecification } from 'vitest/node';

const last = (f: TestSpecification) => (f.moduleId.endsWith('/test/stretched.test.ts') ? 1 : 0);

export default class DrctlSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    return [...(await super.sort(files))].sort((a, b) => last(a) - last(b));
  }
}
