import {sshdComponent} from './sshd.js'
import type {LabComponent} from './types.js'

/** Every part of the lab, in the order progress reports them. */
export const labComponents: LabComponent[] = [sshdComponent]

export function componentById(id: string): LabComponent | undefined {
  return labComponents.find((c) => c.id === id)
}
