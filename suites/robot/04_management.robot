*** Settings ***
Documentation     Meter-specific management tokens (class 2, IEC 62055-41 §1, §9.5): the maximum
...               power limit is stored and enforced, ClearCredit empties the register,
...               ClearTamperCondition clears a tamper condition.
Resource          stslab.resource
Test Setup        Meter At Rest


*** Test Cases ***
SetMaximumPowerLimit is accepted and stored
    [Tags]    id:STS-MGT-001    group:Management
    ...       clause:IEC 62055-41 SetMaximumPowerLimit, class 2 subclass 0, watts in the amount encoding (REFERENCE §1, §4.1)
    Mint And Enter Token    2    0    value=16000
    Result Should Be    accept
    Display Should Show    accept
    Register Should Be    mpl    16000

ClearCredit empties the electricity register
    [Tags]    id:STS-MGT-002    group:Management
    ...       clause:IEC 62055-41 ClearCredit, class 2 subclass 1, register 0 = electricity (REFERENCE §1, §9.5)
    Prepare Meter    credit=5.0
    Mint And Enter Token    2    1    value=0
    Result Should Be    accept
    Display Should Show    accept
    Credit Should Be    0
    Mint And Enter Token    0    0    amount=1.0
    Result Should Be    accept
    Credit Should Be    1.0

ClearCredit for all registers empties the electricity register
    [Tags]    id:STS-MGT-003    group:Management
    ...       clause:IEC 62055-41 ClearCredit value 0xFFFF = all registers (REFERENCE §1, §9.5)
    Prepare Meter    credit=5.0
    Mint And Enter Token    2    1    value=65535
    Result Should Be    accept
    Credit Should Be    0
    Mint And Enter Token    0    0    amount=1.0
    Result Should Be    accept
    Credit Should Be    1.0

ClearTamperCondition clears a tamper condition
    [Tags]    id:STS-MGT-006    group:Management
    ...       clause:IEC 62055-41 ClearTamperCondition, class 2 subclass 5, pad 0 (REFERENCE §1)
    Raise Tamper Condition
    Register Should Be    tamper    1
    Mint And Enter Token    2    5    value=0
    Result Should Be    accept
    Display Should Show    accept
    Register Should Be    tamper    0

A load above the maximum power limit opens the load switch
    [Tags]    id:STS-LS-003    group:LoadSwitch
    ...       clause:IEC 62055-41 SetMaximumPowerLimit: the meter disconnects while the load exceeds the limit (REFERENCE §9.5)
    ...       clause:Declared trip delay and reconnection delay (REFERENCE §9.5, §10)
    Skip Unless Declared    carrier=keypad
    Prepare Meter    credit=5.0
    # a meter reconnecting on a key press has its switch closed after Enter
    Press Keys    ENTER
    Load Switch Should Be    closed    within=5
    Mint And Enter Token    2    0    value=1000
    Result Should Be    accept
    Register Should Be    mpl    1000
    Set Load    1500
    Load Switch Should Be    open    within=20
    Set Load    on=False
    Wait Seconds    110
    Load Switch Should Be    closed    within=60
    Set Load    500
    Wait Seconds    30
    Load Switch Should Be    closed    within=1
    [Teardown]    Restore The Power Limit


*** Keywords ***
Restore The Power Limit
    [Documentation]    Load off and the limit back to 16 000 W, above anything the bench draws.
    Set Load    on=False
    Mint And Enter Token    2    0    value=16000
    Result Should Be    accept
    Register Should Be    mpl    16000
