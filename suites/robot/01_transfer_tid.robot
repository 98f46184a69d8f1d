*** Settings ***
Documentation     TransferCredit and the TID store (IEC 62055-41 §9.2, §9.5): accepted credit is
...               added once; a stored TID is Used, a TID below the store is Old.
Resource          stslab.resource
Test Setup        Meter At Rest


*** Test Cases ***
An electricity credit token is accepted and its amount added
    [Tags]    id:STS-TC-001    group:TransferCredit
    ...       clause:IEC 62055-41 TransferCredit, class 0 subclass 0 electricity in 0.1 kWh (REFERENCE §1, §4.1)
    ...       clause:IEC 62055-41 MeterApplicationProcess: credit added to the register (REFERENCE §9.1, §9.5)
    Mint And Enter Token    0    0    amount=10.0
    Result Should Be    accept
    Display Should Show    accept
    Credit Change Should Be    10.0

Consecutive credit tokens are each accepted and added
    [Tags]    id:STS-TC-002    group:TransferCredit
    ...       clause:IEC 62055-41 TransferCredit, class 0 subclass 0 (REFERENCE §1, §9.5)
    ...       clause:IEC 62055-41 TID check: distinct TIDs are each valid (REFERENCE §9.2)
    Credit Token Should Be Accepted    0.5
    Credit Token Should Be Accepted    0.5
    Credit Token Should Be Accepted    2.5

The random number field does not affect acceptance
    [Tags]    id:STS-TC-003    group:TransferCredit
    ...       clause:IEC 62055-41 TransferCredit data block: RND bits 59-56 (REFERENCE §1)
    FOR    ${rnd}    IN    0    15
        Mint And Enter Token    0    0    amount=0.3    rnd=${rnd}
        Result Should Be    accept
        Credit Change Should Be    0.3
    END

The same token entered twice is refused as Used
    [Tags]    id:STS-TID-001    group:TID
    ...       clause:IEC 62055-41 TID check: a TID equal to a stored TID is Used (REFERENCE §9.2, §9.3 code 10)
    ...       clause:IEC 62055-41 result display: Used (REFERENCE §9.3)
    ${digits} =    Mint Token    0    0    amount=0.2    rnd=5
    Enter Token    ${digits}
    Result Should Be    accept
    Credit Change Should Be    0.2
    Enter Token    ${digits}
    Entry Should Be Refused As    used
    Meter Still Accepts Credit

A different token carrying a stored TID is refused as Used
    [Tags]    id:STS-TID-002    group:TID
    ...       clause:IEC 62055-41 TID check: Used is decided by the TID, not by the digits (REFERENCE §9.2)
    Mint And Enter Token    0    0    amount=0.1    rnd=1    name=first
    Result Should Be    accept
    Mint And Enter Token    0    0    amount=5.0    rnd=9    tid=same_as:first
    Entry Should Be Refused As    used
    Meter Still Accepts Credit

A TID one below the smallest stored TID is refused as Old
    [Tags]    id:STS-TID-003    group:TID
    ...       clause:IEC 62055-41 TID check: a TID below the smallest stored TID is Old (REFERENCE §9.2, §9.3 code 9)
    Mint And Enter Token    0    0    amount=1.0    tid=below_store_min:1
    Entry Should Be Refused As    old
    Meter Still Accepts Credit

A TID far below the store is refused as Old
    [Tags]    id:STS-TID-004    group:TID
    ...       clause:IEC 62055-41 TID check: Old (REFERENCE §9.2)
    Mint And Enter Token    0    0    amount=1.0    tid=below_store_min:100000
    Entry Should Be Refused As    old
    Meter Still Accepts Credit

A management token reusing a stored TID is refused as Used
    [Tags]    id:STS-TID-005    group:TID
    ...       clause:IEC 62055-41 TID check applies to TID-bearing class 2 tokens (REFERENCE §9.2)
    Mint And Enter Token    0    0    amount=0.1    name=credit
    Result Should Be    accept
    Mint And Enter Token    2    0    value=16000    tid=same_as:credit
    Result Should Be    used
    Display Should Show    used
    Meter Still Accepts Credit
