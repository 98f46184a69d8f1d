*** Settings ***
Documentation     Token carriers (IEC 62055-51): the keypad with backspace and its entry time-out,
...               the optical port and the magnetic card; one TID store behind all of them.
...               The class-1 token 18446744073843772416 ("display KRN and KT", subclass 0,
...               MfrCode 0; no TID, not encrypted) is valid on every meter.
Resource          stslab.resource
Test Setup        Meter At Rest


*** Test Cases ***
A digit corrected with backspace gives a valid entry
    [Tags]    id:STS-KP-001    group:Keypad
    ...       clause:IEC 62055-51 numeric token carrier: keypad entry with correction
    ...       clause:IEC 62055-41 class 1 test token (REFERENCE §1, §9.4)
    Skip Unless Declared    carrier=keypad    test=3
    Press Keys    digits:1844674407    digits:5    BACK    digits:3843772416    ENTER
    Result Should Be    accept
    Display Should Show    accept

A part-typed entry is discarded after the entry time-out
    [Tags]    id:STS-KP-002    group:Keypad
    ...       clause:IEC 62055-51 numeric token carrier: keypad entry time-out (declared per meter, REFERENCE §10)
    ...       clause:IEC 62055-41 an entry that is not 20 digits -> Format error (REFERENCE §9.1)
    Skip Unless Declared    carrier=keypad    test=3
    Press Keys    digits:1844674407
    Wait Seconds    65
    Press Keys    digits:3843772416    ENTER
    Result Should Be    format
    Display Should Show    format
    Press Keys    digits:18446744073843772416    ENTER
    Result Should Be    accept

A credit token through the keypad is accepted
    [Tags]    id:STS-CAR-001    group:Carriers
    ...       clause:IEC 62055-51 numeric token carrier: keypad
    ...       clause:IEC 62055-41 TransferCredit (REFERENCE §1, §9.5)
    Skip Unless Declared    carrier=keypad
    Mint And Enter Token    0    0    amount=1.0    carrier=keypad
    Result Should Be    accept
    Display Should Show    accept
    Credit Change Should Be    1.0

A credit token through the optical port is accepted
    [Tags]    id:STS-CAR-002    group:Carriers
    ...       clause:Token entry through the optical port: IEC 62056-21 programming-mode write to the declared register
    ...       clause:IEC 62055-41 TransferCredit (REFERENCE §1, §9.5)
    Skip Unless Declared    carrier=port
    Mint And Enter Token    0    0    amount=1.0    carrier=port
    Result Should Be    accept
    Display Should Show    accept
    Credit Change Should Be    1.0

A credit token on a magnetic card is accepted
    [Tags]    id:STS-CAR-003    group:Carriers
    ...       clause:IEC 62055-51 magnetic card token carrier (provisional card profile, REFERENCE §10)
    ...       clause:IEC 62055-41 TransferCredit (REFERENCE §1, §9.5)
    Skip Unless Declared    carrier=card
    Mint And Enter Token    0    0    amount=1.0    carrier=card
    Result Should Be    accept
    Display Should Show    accept
    Credit Change Should Be    1.0

A token accepted through the port is Used through the keypad
    [Tags]    id:STS-CAR-007    group:Carriers
    ...       clause:IEC 62055-41 one TID store for every carrier (REFERENCE §9.2)
    Skip Unless Declared    carrier=port
    Skip Unless Declared    carrier=keypad
    ${digits} =    Mint Token    0    0    amount=0.1
    Enter Token    ${digits}    carrier=port
    Result Should Be    accept
    Enter Token    ${digits}    carrier=keypad
    Entry Should Be Refused As    used
